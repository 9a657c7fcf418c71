//! `shadowtap capture`: live traffic off an interface to pcap files, with a BPF filter built
//! from `--port`, stopping on `--duration`, `--count` exchanges, SIGINT or SIGTERM, and a
//! summary of packets, kernel drops and HTTP exchanges at the end.
//!
//! While capturing, the loop only writes packets, as tcpdump does, so that watching costs the
//! watched service as little as it can; the HTTP exchanges are counted from the files once
//! the capture has ended. With `--count` the decode chain runs live instead, since it decides
//! when to stop.

use std::fs::File;
use std::io::{Seek, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::capture::live::{Next, Source, Stop, IDLE_WAIT};
use crate::capture::{CaptureReader, MergedReader, PcapWriter};
use crate::cli::CaptureArgs;
use crate::commands::Status;
use crate::http1::Tracker;
use crate::output::{OutputError, Summary};
use crate::pipeline::{self, Chain, Filter};
use crate::privileges::drop_privileges;
use crate::settings::{live_config, parse_size, Limits};

/// Packets written and not written over every file of a capture, and the first error.
#[derive(Default)]
struct Written {
    packets: u64,
    failed: u64,
    error: Option<String>,
}

impl Written {
    fn add(&mut self, s: Summary) {
        self.packets += s.written;
        self.failed += s.failed;
        if self.error.is_none() {
            self.error = s.error;
        }
    }
}

/// Captures the frames of `source` (libpcap on `--interface` in the binary, a capture file in
/// tests) until `--duration`, `--count`, the end of a file source, or `stop` (which the
/// binary triggers on SIGINT and SIGTERM).
pub fn run(
    args: &CaptureArgs,
    source: &Source,
    stop: &Stop,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> anyhow::Result<Status> {
    let rotate = match args.rotate_size.as_deref().map(parse_size).transpose() {
        Ok(r) => r,
        Err(e) => {
            writeln!(err, "shadowtap: error: {e:#}")?;
            return Ok(Status::BadInput);
        }
    };
    let mut live = match live_config(&args.live).and_then(|c| source.open(&c, None, stop)) {
        Ok(l) => l,
        Err(e) => {
            writeln!(err, "shadowtap: error: {e:#}")?;
            return Ok(Status::BadInput);
        }
    };
    let mut path = args.write.clone();
    // A rotated file left by an earlier run is refused now, not when the capture reaches it.
    let earlier = rotate
        .filter(|_| !args.force)
        .and_then(|_| first_rotated(&args.write));
    let created = match earlier {
        Some(p) => Err(OutputError::Exists { path: p }),
        None => PcapWriter::create(&path, live.link(), args.force),
    };
    let mut writer = match created {
        Ok(w) => w,
        Err(e) => {
            writeln!(err, "shadowtap: error: {e}")?;
            return Ok(Status::BadInput);
        }
    };
    // Read back at the end to count the exchanges: the same open file, not the path.
    // Not a regular file (`-w /dev/null`): nothing to read back.
    let first = writer
        .stream()
        .try_clone_file()
        .filter(|f| f.metadata().is_ok_and(|m| m.is_file()));
    if let Some(user) = &args.live.user {
        if let Err(e) = drop_privileges(user, err) {
            writeln!(err, "shadowtap: error: {e:#}")?;
            return Ok(Status::BadInput);
        }
    }
    writeln!(
        err,
        "shadowtap: capturing on {} ({}) to {}",
        args.live.interface,
        live.filter(),
        args.write.display()
    )?;

    let link = live.link();
    let mut written = 24u64;
    let mut files = 1u32;
    let mut paths = vec![path.clone()];
    let mut done = Written::default();
    let limits = Limits::default();
    let (mut packets, mut bytes) = (0u64, 0u64);
    let mut exchanges = 0u64;
    {
        let tracker = Tracker::new(limits.http1.clone(), |_| exchanges += 1);
        let mut chain = Chain::new(limits.wire.clone(), limits.reassembly.clone(), tracker);
        loop {
            let frame = match live.next_packet()? {
                Next::Stop => break,
                Next::Idle => {
                    live.wait(IDLE_WAIT);
                    continue;
                }
                Next::Packet(frame) => frame,
            };
            if rotate.is_some_and(|r| written >= r) {
                done.add(writer.stream_mut().finish());
                if done.error.is_some() {
                    break;
                }
                path = rotated(&args.write, files);
                writer = match PcapWriter::create(&path, link, args.force) {
                    Ok(w) => w,
                    Err(e) => {
                        done.error = Some(e.to_string());
                        break;
                    }
                };
                paths.push(path.clone());
                files += 1;
                written = 24;
            }
            writer.record(frame.ts, frame.data, frame.orig_len)?;
            written += 16 + frame.data.len() as u64;
            packets += 1;
            bytes += frame.data.len() as u64;
            // A full disk ends the capture: nothing more could be kept.
            if writer.stream().has_failed() {
                break;
            }
            let Some(count) = args.count else { continue };
            chain.push(&frame);
            if chain.sink().counters().exchanges >= count {
                break;
            }
        }
        chain.finish();
    }
    if done.error.is_none() {
        done.add(writer.stream_mut().finish());
    }
    drop(writer);
    let drops = live.drops();
    let seconds = live.started().elapsed().as_secs_f64();
    let counted = match (args.count, first) {
        (Some(_), _) => format!("{exchanges} HTTP exchanges"),
        (None, Some(first)) => match count_exchanges(first, &paths[1..], &limits) {
            Ok(n) => format!("{n} HTTP exchanges"),
            Err(e) => format!("HTTP exchanges not counted ({e:#})"),
        },
        (None, None) => "HTTP exchanges not counted (not a regular file)".to_string(),
    };
    writeln!(
        out,
        "captured {packets} packets ({bytes} bytes) in {seconds:.1} s to {} file{}; {} dropped by the kernel, {} by the interface; {counted}",
        files,
        if files == 1 { "" } else { "s" },
        drops.0,
        drops.1
    )?;
    // The summary is out; a failed write of the capture is a runtime failure (exit 1).
    if let Some(e) = done.error {
        out.flush()?;
        writeln!(
            err,
            "shadowtap: error: {e}; the capture stopped there ({} packets written, {} not)",
            done.packets, done.failed
        )?;
        return Ok(Status::Failure);
    }
    Ok(Status::Success)
}

/// The HTTP exchanges in the files written, read back in order: `first` is the first file,
/// opened before privileges were dropped (it belongs to the user who started the capture).
fn count_exchanges(mut first: File, rest: &[PathBuf], limits: &Limits) -> anyhow::Result<u64> {
    first.rewind().context("reading the capture back")?;
    let mut readers = vec![CaptureReader::new(first, "capture".into())?];
    for path in rest {
        let file = File::open(path).with_context(|| format!("reading {}", path.display()))?;
        readers.push(CaptureReader::new(file, path.display().to_string())?);
    }
    let mut frames = MergedReader::new(readers);
    let mut exchanges = 0u64;
    let tracker = Tracker::new(limits.http1.clone(), |_| exchanges += 1);
    let mut chain = Chain::new(limits.wire.clone(), limits.reassembly.clone(), tracker);
    pipeline::drive(&mut frames, &mut Filter::none(), &mut chain, |_| true);
    chain.finish();
    drop(chain);
    Ok(exchanges)
}

/// The first rotated file of `base` (`PATH.N`, `N` a positive integer as [`rotated`] spells
/// it) already in its directory, in any state (a file, a link, a directory), if there is one.
/// A directory that cannot be listed has none: creating `base` in it reports why.
fn first_rotated(base: &Path) -> Option<PathBuf> {
    let name = base.file_name()?.as_bytes();
    let dir = match base.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let entry = entry.file_name();
            let n = entry.as_bytes().strip_prefix(name)?.strip_prefix(b".")?;
            rotation_number(n)
        })
        .min()
        .map(|n| rotated(base, n))
}

/// `N` of a `PATH.N` that [`rotated`] may write: decimal, no sign, no leading zero, not 0.
fn rotation_number(n: &[u8]) -> Option<u32> {
    let canonical =
        n.first().is_some_and(|&d| (b'1'..=b'9').contains(&d)) && n.iter().all(u8::is_ascii_digit);
    if !canonical {
        return None;
    }
    std::str::from_utf8(n).ok()?.parse().ok()
}

/// The name of the `n`th rotated file: `PATH.n`.
fn rotated(base: &Path, n: u32) -> PathBuf {
    let mut name = base.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}
