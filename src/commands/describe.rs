//! What a report says about the run behind it (`report::model::Run`): an id, the tool, the
//! command line with credentials redacted, the inputs with their sizes and SHA-256, the
//! times and the settings. Shared by `replay` and `mirror`.

use std::hash::{BuildHasher as _, Hasher as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use sha2::{Digest as _, Sha256};

use crate::capture::Timestamp;
use crate::redact::{is_sensitive_header, redact_target};
use crate::replay::sample::SampleBy;
use crate::report::model::{Input, Run, RunSettings, Span};
use crate::settings::{ReplaySettings, Speed};

/// Seconds since the Unix epoch, now.
pub(crate) fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// A capture timestamp in seconds since the epoch.
pub(crate) fn seconds(ts: Timestamp) -> f64 {
    ts.0 as f64 / 1e9
}

/// 64 random bits, hex: the standard library's hasher keys come from the operating
/// system's random source, and the time and process id make two runs differ even so.
fn run_id() -> String {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.write_u32(std::process::id());
    format!("{:016x}", h.finish())
}

/// One argument of the command line as the report writes it: a URL's userinfo and
/// sensitive query values redacted, and so the value of a sensitive `--set-header`.
fn redact_arg(previous: Option<&str>, arg: &str) -> String {
    let header = match arg.strip_prefix("--set-header=") {
        Some(h) => Some(("--set-header=", h)),
        None if previous == Some("--set-header") => Some(("", arg)),
        None => None,
    };
    if let Some((flag, header)) = header {
        if let Some((name, _)) = header.split_once(':') {
            if is_sensitive_header(name.trim()) {
                return format!("{flag}{name}: REDACTED");
            }
        }
        return arg.to_string();
    }
    if arg.contains("://") {
        return String::from_utf8_lossy(&redact_target(arg.as_bytes())).into_owned();
    }
    arg.to_string()
}

/// The command line, redacted.
pub(crate) fn command_line(args: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for arg in args {
        let redacted = redact_arg(out.last().map(String::as_str), &arg);
        out.push(redacted);
    }
    out
}

/// The settings a replay report records.
pub(crate) fn settings(settings: &ReplaySettings, live: bool) -> RunSettings {
    RunSettings {
        speed: match (live, settings.speed) {
            (true, _) => "live".into(),
            (false, Speed::Max) => "max".into(),
            (false, Speed::Factor(f)) => format!("{f}x"),
        },
        rate: settings.rate,
        sample: settings.selection.sample_percent,
        sample_by: match &settings.selection.sample_by {
            SampleBy::Route => "route".into(),
            SampleBy::Header(name) => format!("header:{name}"),
            SampleBy::Client => "client".into(),
            SampleBy::Connection => "connection".into(),
        },
        seed: settings.selection.seed,
        concurrency: settings.concurrency as u64,
        timeout_ms: settings.timeout.as_millis() as u64,
        order: match settings.order {
            crate::replay::engine::Order::Independent => "none".into(),
            crate::replay::engine::Order::Connection => "connection".into(),
        },
        min_change: settings.thresholds.latency_share,
        min_change_abs_us: settings.thresholds.latency_us,
        min_rate_change: settings.thresholds.rate,
    }
}

/// A run's description; `inputs` and `captured` as the command found them.
pub(crate) fn run(
    mode: &str,
    settings: &ReplaySettings,
    inputs: Vec<Input>,
    captured: Option<Span>,
    started: f64,
) -> Run {
    Run {
        id: run_id(),
        tool: format!("shadowtap {}", env!("CARGO_PKG_VERSION")),
        command: command_line(std::env::args_os().map(|a| a.to_string_lossy().into_owned())),
        mode: mode.into(),
        shadow: String::from_utf8_lossy(&redact_target(settings.shadow.url.as_bytes()))
            .into_owned(),
        inputs,
        captured,
        ran: Span {
            start: started,
            end: now(),
        },
        settings: self::settings(settings, mode == "mirror"),
    }
}

/// The inputs' descriptions: each regular file's size and SHA-256, `bundled` bytes (`demo`)
/// hashed in place of the one file, and standard input or a pipe as a name alone. `stop`
/// ends the hashing early (the files are then described without a hash).
pub(crate) fn inputs(files: &[PathBuf], bundled: Option<&[u8]>, stop: &AtomicBool) -> Vec<Input> {
    files
        .iter()
        .map(|path| {
            let name = path.display().to_string();
            if let Some(bytes) = bundled {
                return bytes_input(name, bytes);
            }
            match std::fs::metadata(path) {
                Ok(m) if m.is_file() => match hash_file(path, stop) {
                    Some((bytes, sha)) => Input {
                        name,
                        bytes: Some(bytes),
                        sha256: Some(sha),
                    },
                    None => unhashed(name, Some(m.len())),
                },
                _ => unhashed(name, None),
            }
        })
        .collect()
}

/// The inputs being hashed on a thread of their own, at the lowest priority, so that the
/// replay never waits for them: hashing 300 MB takes a quarter of a second.
pub(crate) struct Hashing {
    files: Vec<PathBuf>,
    bundled: Option<&'static [u8]>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<Vec<Input>>>,
}

impl Hashing {
    pub(crate) fn start(files: &[PathBuf], bundled: Option<&'static [u8]>) -> Hashing {
        let stop = Arc::new(AtomicBool::new(false));
        let (list, flag) = (files.to_vec(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("shadowtap-hash".into())
            .spawn(move || {
                lowest_priority();
                inputs(&list, bundled, &flag)
            })
            .ok();
        Hashing {
            files: files.to_vec(),
            bundled,
            stop,
            thread,
        }
    }

    /// The inputs' descriptions, waiting for the hashes unless `now` (a signal stopped the
    /// run: the report must not wait; the files are then described without one).
    pub(crate) fn finish(mut self, now: bool) -> Vec<Input> {
        if now {
            self.stop.store(true, Ordering::Relaxed);
        }
        match self.thread.take().map(std::thread::JoinHandle::join) {
            Some(Ok(inputs)) => inputs,
            // No thread could be started (or it ended badly): hashed here.
            _ => inputs(&self.files, self.bundled, &self.stop),
        }
    }
}

/// Not finished (the run ended before its report): the thread stops at its next read.
impl Drop for Hashing {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Puts the calling thread at the lowest priority (nice 19): Linux's nice is per thread.
/// Best effort.
fn lowest_priority() {
    // SAFETY: gettid has no arguments and cannot fail; setpriority only reads its
    // arguments.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, 19);
    }
}

/// A file's size and SHA-256 (hex), read 1 MiB at a time; None when it cannot be read or
/// `stop` is set.
fn hash_file(path: &Path, stop: &AtomicBool) -> Option<(u64, String)> {
    let mut file = std::fs::File::open(path).ok()?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        if stop.load(Ordering::Relaxed) {
            return None;
        }
        let n = match std::io::Read::read(&mut file, &mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return None,
        };
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    Some((total, hex(&hasher.finalize())))
}

/// An input that could not be hashed (standard input, a pipe, a file gone since).
pub(crate) fn unhashed(name: String, bytes: Option<u64>) -> Input {
    Input {
        name,
        bytes,
        sha256: None,
    }
}

/// Bytes held in memory (`demo`'s bundled capture), hashed.
pub(crate) fn bytes_input(name: String, bytes: &[u8]) -> Input {
    Input {
        name,
        bytes: Some(bytes.len() as u64),
        sha256: Some(hex(&Sha256::digest(bytes))),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_on_the_command_line_are_redacted() {
        let line = command_line(
            [
                "shadowtap",
                "replay",
                "x.pcap",
                "--shadow",
                "http://user:secret@shadow:8080/?token=abc&x=1",
                "--set-header",
                "Authorization: Bearer abc",
                "--set-header=Cookie: a=b",
                "--set-header",
                "X-Team: blue",
            ]
            .map(String::from),
        );
        let text = line.join(" ");
        assert!(!text.contains("secret") && !text.contains("abc") && !text.contains("a=b"));
        assert!(
            text.contains("http://REDACTED@shadow:8080/?token=REDACTED&x=1"),
            "{text}"
        );
        assert!(text.contains("Authorization: REDACTED") && text.contains("X-Team: blue"));
        assert_eq!(line.len(), 10);
    }

    #[test]
    fn files_are_hashed_whole_and_a_stop_leaves_the_hash_out() {
        let dir = std::env::temp_dir().join(format!("shadowtap-describe-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f.bin");
        // Past one read's worth, so the hash is of several reads.
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let files = [path.clone(), dir.join("missing")];
        let run = AtomicBool::new(false);
        let got = inputs(&files, None, &run);
        assert_eq!(got[0].bytes, Some(3_000_000));
        assert_eq!(got[0].sha256, Some(hex(&Sha256::digest(&data))));
        assert_eq!((got[1].bytes, got[1].sha256.as_deref()), (None, None));
        let stopped = inputs(&files, None, &AtomicBool::new(true));
        assert_eq!(
            (stopped[0].bytes, stopped[0].sha256.as_deref()),
            (Some(3_000_000), None)
        );
        let bundled = inputs(&files[..1], Some(b"abc"), &run);
        assert_eq!(bundled[0].bytes, Some(3));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn two_runs_have_different_ids() {
        assert_ne!(run_id(), run_id());
    }
}
