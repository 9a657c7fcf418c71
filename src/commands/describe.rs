//! What a report says about the run behind it (`report::model::Run`): an id, the tool, the
//! command line with credentials redacted, the inputs with their sizes and SHA-256, the
//! times and the settings. Shared by `replay` and `mirror`.

use std::hash::{BuildHasher as _, Hasher as _};
use std::io::Read;
use std::path::Path;
use std::sync::{Arc, Mutex};
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
        command: command_line(std::env::args()),
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

/// The SHA-256 of what a reader passed on, shared with whoever reads the file through it.
#[derive(Clone, Default)]
pub(crate) struct Hash(Arc<Mutex<(Sha256, u64)>>);

impl Hash {
    /// `inner`, hashing what is read through it.
    pub(crate) fn reader<R: Read>(&self, inner: R) -> Hashing<R> {
        Hashing {
            inner,
            hash: self.clone(),
        }
    }

    /// The file's description: its size and hash. What the reader did not reach (a
    /// capture cut short stops its reader early) is read here, so the hash is of the whole
    /// file.
    pub(crate) fn input(&self, path: &Path) -> Input {
        let name = path.display().to_string();
        let Ok(whole) = std::fs::metadata(path).map(|m| m.len()) else {
            return unhashed(name, None);
        };
        let whole = Some(whole);
        let mut state = match self.0.lock() {
            Ok(s) => s,
            Err(_) => return unhashed(name, whole),
        };
        if let Some(len) = whole.filter(|&len| len > state.1) {
            if rest(path, state.1, &mut state.0).is_err() {
                return unhashed(name, whole);
            }
            state.1 = len;
        }
        let digest = state.0.clone().finalize();
        Input {
            name,
            bytes: Some(state.1),
            sha256: Some(hex(&digest)),
        }
    }
}

/// Hashes the bytes of `path` from `offset` on into `hasher`.
fn rest(path: &Path, offset: u64, hasher: &mut Sha256) -> std::io::Result<()> {
    use std::io::{Seek, SeekFrom};
    let mut file = std::fs::File::open(path)?;
    file.seek(SeekFrom::Start(offset))?;
    std::io::copy(&mut file, hasher)?;
    Ok(())
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

/// A reader that hashes what passes through it.
pub(crate) struct Hashing<R> {
    inner: R,
    hash: Hash,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Ok(mut state) = self.hash.0.lock() {
            state.0.update(&buf[..n]);
            state.1 += n as u64;
        }
        Ok(n)
    }
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
    fn a_file_is_hashed_whole_even_when_its_reader_stopped_early() {
        let dir = std::env::temp_dir().join(format!("shadowtap-describe-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f.bin");
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let hash = Hash::default();
        let mut reader = hash.reader(std::fs::File::open(&path).unwrap());
        let mut first = vec![0u8; 1000];
        reader.read_exact(&mut first).unwrap();
        let input = hash.input(&path);
        assert_eq!(input.bytes, Some(100_000));
        assert_eq!(input.sha256, Some(hex(&Sha256::digest(&data))));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn two_runs_have_different_ids() {
        assert_ne!(run_id(), run_id());
    }
}
