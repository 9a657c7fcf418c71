//! One file per subcommand: the only place that wires stages together, opens files and
//! decides exit codes. Uses `anyhow` for errors with context. What several commands share
//! is in modules that are not commands (`outputs`, `verdict`, and this file's `Status` and
//! `Interrupts`): a command never imports another (docs/architecture.md "Layers and the
//! import rule"; `demo`, which runs `replay` and `mirror` on its embedded capture, is the
//! one exception).

pub mod capture;
pub mod demo;
mod describe;
pub mod inspect;
pub mod mirror;
mod outputs;
pub mod replay;
pub mod report;
mod verdict;

/// `mirror` and `capture` over a capture file (a file of its own, under `tests/`, so the
/// import rule does not take it for a command).
#[cfg(test)]
#[path = "tests/live.rs"]
mod live_tests;

use crate::capture::live::{Source, Stop};
use crate::cli::{Cli, Command};

/// How a command ended, as the process exit code DESIGN.md specifies ("Exit codes").
///
/// When several apply, the run exits with the most severe, as [`Status::worst`] picks:
/// 2 > 1 > 130/143 > 4 > 3 > 0 (an interrupted `replay` exits 130 or 143 unless 2 or 1
/// applies).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// 0: done; every `--fail-if` condition evaluated and none crossed. Warnings (if any)
    /// went to stderr.
    Success,
    /// 3: a `--fail-if` condition crossed.
    Threshold,
    /// 4: a `--fail-if` condition could not be evaluated, nothing was replayed while
    /// `--fail-if` is given, or the run is not representative (too much dropped).
    Inconclusive,
    /// 130 or 143: `replay` stopped by SIGINT or SIGTERM (its report still printed).
    Interrupted(Signal),
    /// 1: a runtime failure: every replayed request failed (the shadow unreachable), or a
    /// requested output could not be written (the report is printed first).
    Failure,
    /// 2: bad usage, an input that could not be read as a capture (the others were still
    /// processed), missing capture privilege, or a shadow refused as a production target.
    BadInput,
}

/// The signal that stopped a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    Int,
    Term,
}

impl Signal {
    /// The signal with this number, if it is one a run stops on.
    pub fn from_number(n: i32) -> Option<Signal> {
        match n {
            libc::SIGINT => Some(Signal::Int),
            libc::SIGTERM => Some(Signal::Term),
            _ => None,
        }
    }

    /// The signal's number.
    pub fn number(self) -> i32 {
        match self {
            Signal::Int => libc::SIGINT,
            Signal::Term => libc::SIGTERM,
        }
    }

    /// `SIGINT`, `SIGTERM`: as the report names it.
    pub fn name(self) -> &'static str {
        match self {
            Signal::Int => "SIGINT",
            Signal::Term => "SIGTERM",
        }
    }
}

impl Status {
    pub fn as_u8(self) -> u8 {
        match self {
            Status::Success => 0,
            Status::Failure => 1,
            Status::BadInput => 2,
            Status::Threshold => 3,
            Status::Inconclusive => 4,
            // 128 + the signal's number, as shells report a process a signal ended.
            Status::Interrupted(Signal::Int) => 130,
            Status::Interrupted(Signal::Term) => 143,
        }
    }

    /// How severe: the higher wins when several apply (DESIGN.md's precedence).
    fn rank(self) -> u8 {
        match self {
            Status::Success => 0,
            Status::Threshold => 1,
            Status::Inconclusive => 2,
            Status::Interrupted(_) => 3,
            Status::Failure => 4,
            Status::BadInput => 5,
        }
    }

    /// The one of `a` and `b` the process exits with: 2 > 1 > 130/143 > 4 > 3 > 0. A
    /// failure found late (a report that could not be written) is folded in with
    /// `status = Status::worst(status, Status::Failure)`.
    pub fn worst(a: Status, b: Status) -> Status {
        if b.rank() > a.rank() {
            b
        } else {
            a
        }
    }
}

/// SIGINT and SIGTERM watched on a thread of their own for as long as this lives: each one
/// is handed, with how many came so far (1 for the first), to the callback, which runs on
/// that thread (not in the signal handler), so it may take locks and wake tasks.
pub struct Interrupts {
    handle: signal_hook::iterator::Handle,
    thread: Option<std::thread::JoinHandle<()>>,
    first: std::sync::Arc<std::sync::Mutex<Option<Signal>>>,
}

impl Interrupts {
    pub fn watch(mut on: impl FnMut(Signal, usize) + Send + 'static) -> anyhow::Result<Self> {
        use anyhow::Context as _;
        let mut signals = signal_hook::iterator::Signals::new([libc::SIGINT, libc::SIGTERM])
            .context("installing signal handlers")?;
        let handle = signals.handle();
        let first = std::sync::Arc::new(std::sync::Mutex::new(None));
        let record = first.clone();
        let thread = std::thread::Builder::new()
            .name("shadowtap-signals".into())
            .spawn(move || {
                let mut n = 0;
                for number in signals.forever() {
                    let Some(signal) = Signal::from_number(number) else {
                        continue;
                    };
                    n += 1;
                    if let Ok(mut first) = record.lock() {
                        first.get_or_insert(signal);
                    }
                    on(signal, n);
                }
            })
            .context("starting the signal thread")?;
        Ok(Interrupts {
            handle,
            thread: Some(thread),
            first,
        })
    }

    /// The first signal that came, if any.
    pub fn first(&self) -> Option<Signal> {
        self.first.lock().ok().and_then(|f| *f)
    }
}

impl Drop for Interrupts {
    fn drop(&mut self) {
        self.handle.close();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A live run's [`Stop`], triggered by each SIGINT and SIGTERM once the capture is open (before,
/// the signal ends the process), for as long as the returned [`Interrupts`] lives.
fn stop_on_signals() -> anyhow::Result<(Stop, Interrupts)> {
    let stop = Stop::new();
    let on_signal = stop.clone();
    let interrupts = Interrupts::watch(move |signal, _| {
        if on_signal.armed() {
            on_signal.trigger();
        } else {
            // Before the capture is open nothing would be lost: the signal ends the process.
            let _ = signal_hook::low_level::emulate_default_handler(signal.number());
        }
    })?;
    Ok((stop, interrupts))
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
            // The shadow's name is looked up and its TLS files read now, before the run.
            let shadow = match crate::replay::target::resolve(&settings.shadow) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("shadowtap: error: {e:#}");
                    return Ok(Status::BadInput);
                }
            };
            // stderr is not held locked: the progress line is drawn on it from another thread.
            replay::run(
                &settings,
                &shadow,
                &mut stdout.lock(),
                &mut std::io::stderr(),
            )
        }
        Command::Mirror(args) => {
            let (stop, _interrupts) = stop_on_signals()?;
            mirror::run(
                *args,
                &Source::Interface,
                &stop,
                &mut stdout.lock(),
                &mut std::io::stderr(),
            )
        }
        Command::Capture(args) => {
            let (stop, _interrupts) = stop_on_signals()?;
            capture::run(
                &args,
                &Source::Interface,
                &stop,
                &mut stdout.lock(),
                &mut std::io::stderr(),
            )
        }
        Command::Demo(args) if args.live => {
            let (stop, _interrupts) = stop_on_signals()?;
            demo::run_live(&stop, &mut stdout.lock(), &mut std::io::stderr())
        }
        Command::Demo(_) => demo::run(&mut stdout.lock(), &mut std::io::stderr()),
        Command::Report(args) => report::run(&args, &mut stdout.lock(), &mut stderr.lock()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_most_severe_status_wins_in_the_documented_order() {
        // DESIGN.md: 2 > 1 > 4 > 3 > 0, and an interrupted replay exits 130 or 143 unless
        // 2 or 1 applies.
        let order = [
            Status::Success,
            Status::Threshold,
            Status::Inconclusive,
            Status::Interrupted(Signal::Term),
            Status::Failure,
            Status::BadInput,
        ];
        for (i, &a) in order.iter().enumerate() {
            for (j, &b) in order.iter().enumerate() {
                let want = order[i.max(j)];
                assert_eq!(Status::worst(a, b), want, "{a:?} {b:?}");
            }
        }
        let codes: Vec<u8> = order.iter().map(|s| s.as_u8()).collect();
        assert_eq!(codes, [0, 3, 4, 143, 1, 2]);
        assert_eq!(Status::Interrupted(Signal::Int).as_u8(), 130);
        assert_eq!(
            Status::worst(Status::Interrupted(Signal::Int), Status::Inconclusive),
            Status::Interrupted(Signal::Int)
        );
    }
}
