//! Checks that a window screenshot exists, has a window's size and is not blank (CI smoke test).

use std::process::ExitCode;

fn main() -> ExitCode {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: check_screenshot PNG");
        return ExitCode::FAILURE;
    };
    let image = match image::open(&path) {
        Ok(image) => image.to_rgb8(),
        Err(error) => {
            eprintln!("{path}: {error}");
            return ExitCode::FAILURE;
        }
    };
    let (width, height) = image.dimensions();
    let first = image.get_pixel(0, 0);
    let different = image.pixels().filter(|p| *p != first).count();
    let mut colours: Vec<[u8; 3]> = image.pixels().map(|p| p.0).collect();
    colours.sort_unstable();
    colours.dedup();
    println!(
        "{path}: {width}x{height}, {} colours, {different} pixels unlike the corner",
        colours.len()
    );
    if width < 640
        || height < 400
        || colours.len() < 50
        || different < (width * height / 10) as usize
    {
        eprintln!("{path} looks blank");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
