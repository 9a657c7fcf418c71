//! One file per subcommand: the only place that wires stages together, opens files and
//! decides exit codes. Uses `anyhow` for errors with context.

pub mod capture;
pub mod demo;
pub mod inspect;
pub mod live;
pub mod mirror;
mod outputs;
pub mod replay;
pub mod report;

use crate::cli::{Cli, Command};

/// How a command ended, as the process exit code DESIGN.md specifies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Done; warnings (if any) went to stderr.
    Success,
    /// A runtime failure.
    Failure,
    /// Bad usage, or an input that could not be read as a capture (the others were still
    /// processed), or missing capture privilege.
    BadInput,
    /// A `--fail-if` threshold was crossed.
    Threshold,
}

impl Status {
    pub fn as_u8(self) -> u8 {
        match self {
            Status::Success => 0,
            Status::Failure => 1,
            Status::BadInput => 2,
            Status::Threshold => 3,
        }
    }
}

/// Runs the command the user asked for, writing to the process's stdout and stderr.
pub fn run(cli: Cli) -> anyhow::Result<Status> {
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    match cli.command {
        Command::Inspect(args) => {
            let settings = match crate::settings::InspectSettings::from_args(args) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("shadowtap: error: {e:#}");
                    return Ok(Status::BadInput);
                }
            };
            inspect::run(&settings, &mut stdout.lock(), &mut stderr.lock())
        }
        Command::Replay(args) => {
            let settings = match crate::settings::ReplaySettings::from_args(*args) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("shadowtap: error: {e:#}");
                    return Ok(Status::BadInput);
                }
            };
            // stderr is not held locked: the progress line is drawn on it from another thread.
            replay::run(&settings, &mut stdout.lock(), &mut std::io::stderr())
        }
        Command::Mirror(args) => mirror::run(*args, &mut stdout.lock(), &mut std::io::stderr()),
        Command::Capture(args) => capture::run(&args, &mut stdout.lock(), &mut std::io::stderr()),
        Command::Demo(args) if args.live => {
            demo::run_live(&mut stdout.lock(), &mut std::io::stderr())
        }
        Command::Demo(_) => demo::run(&mut stdout.lock(), &mut std::io::stderr()),
        Command::Report(args) => report::run(&args, &mut stdout.lock(), &mut stderr.lock()),
    }
}
