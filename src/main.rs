//! The `shadowtap` binary: parse the command line, run, map the outcome to an exit code.

use std::io::{self, Write};
use std::process::ExitCode;

use clap::Parser;

/// mimalloc: exchanges are built on the reader thread and freed on the replay threads; the
/// system allocator spends a sixth of replay's CPU time on that hand-over, mimalloc far less.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = shadowtap::cli::Cli::parse();
    match shadowtap::commands::run(cli) {
        Ok(code) => ExitCode::from(code.as_u8()),
        Err(err) => {
            // A closed stdout (`shadowtap inspect ... | head`) is the reader's choice, not a failure.
            if err
                .chain()
                .filter_map(|e| e.downcast_ref::<io::Error>())
                .any(|e| e.kind() == io::ErrorKind::BrokenPipe)
            {
                return ExitCode::SUCCESS;
            }
            let _ = writeln!(io::stderr(), "shadowtap: error: {err:#}");
            ExitCode::from(shadowtap::commands::Status::Failure.as_u8())
        }
    }
}
