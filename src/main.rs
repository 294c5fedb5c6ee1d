//! The `sla` binary: parse the command line and hand over to the command it names.

use clap::Parser;

fn main() -> std::process::ExitCode {
    // Before any thread starts: training reuses freed activation buffers instead of page-faulting.
    sla::ops::keep_freed_memory();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = sla::cli::Cli::parse();
    match sla::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            // One line: the error and its causes, no backtrace.
            let causes: Vec<String> = error.chain().map(ToString::to_string).collect();
            eprintln!("error: {}", causes.join(": "));
            std::process::ExitCode::FAILURE
        }
    }
}
