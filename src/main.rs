//! The `shadowtap` binary: parse the command line, run, map the outcome to an exit code.

use std::io::{self, Write};
use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::Parser;

/// mimalloc: exchanges are built on the reader thread and freed on the replay threads; the
/// system allocator spends a sixth of replay's CPU time on that hand-over, mimalloc far less.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = match shadowtap::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(&e),
    };
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

/// Help and version go out as clap writes them; a command line that cannot be parsed gets one
/// line, as every other error does: clap's message without its usage and tips.
fn usage_error(e: &clap::Error) -> ExitCode {
    if !e.use_stderr() || e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
        let _ = e.print();
        return ExitCode::from(e.exit_code() as u8);
    }
    let _ = writeln!(
        io::stderr(),
        "shadowtap: error: {} (see --help)",
        first_paragraph(e)
    );
    ExitCode::from(shadowtap::commands::Status::BadInput.as_u8())
}

/// The first paragraph of clap's message on one line: `the following required arguments were
/// not provided: --shadow <URL>`.
fn first_paragraph(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let lines: Vec<&str> = text
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .map(str::trim)
        .collect();
    let joined = lines.join(" ");
    joined
        .strip_prefix("error: ")
        .unwrap_or(&joined)
        .to_string()
}
