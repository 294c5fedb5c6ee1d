//! Image files on disk for the readers of image trees (image folders, tiny-ImageNet): sorted
//! listings, and decoding one file into RGB CHW bytes at a square size.

use std::path::{Path, PathBuf};

use image::imageops::FilterType;

use super::dataset::DataError;

fn is_image(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "png" | "jpg" | "jpeg"))
}

/// Sorted entries of `dir` (hidden ones skipped) that are folders (`folders`) or image files
/// (.png, .jpg, .jpeg in any case). Sorted so that the order of a dataset, and with it every seeded
/// run on it, does not depend on the file system.
pub(super) fn list(dir: &Path, folders: bool) -> Result<Vec<PathBuf>, DataError> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(DataError::io_at(dir))? {
        let path = entry.map_err(DataError::io_at(dir))?.path();
        // Bytes, not text: a hidden name need not be UTF-8 to be hidden.
        let hidden = path
            .file_name()
            .is_some_and(|n| n.as_encoded_bytes().starts_with(b"."));
        if hidden {
            continue;
        }
        if folders && path.is_dir() || !folders && path.is_file() && is_image(&path) {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

/// `size` as an image side, refusing 0 and sizes the image crate cannot hold.
pub(super) fn square_side(size: usize) -> Result<u32, DataError> {
    if size == 0 {
        return Err(DataError::Invalid(
            "image size must be at least 1 pixel".to_string(),
        ));
    }
    u32::try_from(size).map_err(|_| DataError::Invalid(format!("image size {size} is too large")))
}

/// Decodes the image file at `path` (its format guessed from its bytes, so a misnamed file still
/// reads), resizes it to `side × side` unless it already is, and writes it as RGB CHW bytes into
/// `out` (`3 · side²` bytes; grey images get three equal planes). Returns whether the file was
/// stored grey, so a reader can keep one channel when all of its images are.
pub(super) fn decode_into(path: &Path, side: u32, out: &mut [u8]) -> Result<bool, DataError> {
    let image = image::ImageReader::open(path)
        .map_err(DataError::io_at(path))?
        .with_guessed_format()
        .map_err(DataError::io_at(path))?
        .decode()
        .map_err(|e| DataError::format(path, format!("unreadable image: {e}")))?;
    let grey = !image.color().has_color();
    let image = if image.width() == side && image.height() == side {
        image
    } else {
        image.resize_exact(side, side, FilterType::Triangle)
    };
    let rgb = image.to_rgb8();
    let plane = rgb.as_raw().len() / 3;
    debug_assert_eq!(out.len(), 3 * plane);
    for (p, pixel) in rgb.pixels().enumerate() {
        for c in 0..3 {
            out[c * plane + p] = pixel.0[c];
        }
    }
    Ok(grey)
}
