//! The `sla` binary: parse the command line and hand over to the command it names.

use clap::Parser;

/// Large blocks (the activations) on cache-line boundaries and on 2 MB pages where the kernel
/// gives them: see `sla::ops::LargeBlockAllocator`.
#[global_allocator]
static ALLOCATOR: sla::ops::LargeBlockAllocator = sla::ops::LargeBlockAllocator;

fn main() -> std::process::ExitCode {
    // Before any thread starts: training reuses freed activation buffers instead of page-faulting.
    sla::ops::keep_freed_memory();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = sla::cli::Cli::parse();
    match sla::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", sla::cli::error_line(&error));
            if error
                .downcast_ref::<sla::cli::interrupt::Interrupted>()
                .is_some()
            {
                std::process::ExitCode::from(sla::cli::interrupt::INTERRUPTED_EXIT as u8)
            } else {
                std::process::ExitCode::FAILURE
            }
        }
    }
}
