//! `shadowtap capture`: live traffic off an interface to pcap files, with a BPF filter built
//! from `--port`, stopping on `--duration`, `--count` exchanges, SIGINT or SIGTERM, and a
//! summary of packets, kernel drops and HTTP exchanges at the end.
//!
//! The capture loop also runs the decode chain, so it can count exchanges (`--count`) and
//! report what the file will hold.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{anyhow, Context as _};

use crate::capture::{Frame, LinkType, PcapWriter, Timestamp, WRITER_SNAPLEN};
use crate::cli::CaptureArgs;
use crate::commands::Status;
use crate::http1::Tracker;
use crate::reassembly::Reassembler;
use crate::settings::{parse_duration, parse_size, Limits};
use crate::wire::Decoder;

/// The read timeout handed to libpcap (the loop is non-blocking; see `run`).
const READ_TIMEOUT_MS: i32 = 100;
/// Sleep when no packet is waiting: the kernel buffer holds what arrives meanwhile.
const IDLE_WAIT: std::time::Duration = std::time::Duration::from_millis(5);
/// Output file permissions: captures hold production traffic (RELIABILITY.md S08).
const FILE_MODE: u32 = 0o600;

/// The BPF filter `--port` stands for: both directions of each port, so responses are seen.
pub fn port_filter(ports: &[u16]) -> String {
    if ports.is_empty() {
        return "tcp".into();
    }
    let each: Vec<String> = ports.iter().map(|p| format!("tcp port {p}")).collect();
    each.join(" or ")
}

fn create(path: &Path, link: LinkType) -> anyhow::Result<PcapWriter<BufWriter<File>>> {
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(FILE_MODE)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    Ok(PcapWriter::new(BufWriter::new(file), link)?)
}

/// The message for a capture that could not be opened: privileges say how to get them.
fn open_error(interface: &str, e: &pcap::Error) -> String {
    let text = e.to_string();
    if text.contains("ermission") || text.contains("not permitted") {
        format!(
            "capturing on {interface} needs the CAP_NET_RAW capability ({text}): run as root, or \
             `sudo setcap cap_net_raw,cap_net_admin=eip $(command -v shadowtap)` (cap_net_admin only \
             for --promisc), or add NET_RAW to the container's capabilities"
        )
    } else {
        format!("cannot capture on {interface}: {text}")
    }
}

pub fn run(args: &CaptureArgs, out: &mut dyn Write, err: &mut dyn Write) -> anyhow::Result<Status> {
    let duration = args.duration.as_deref().map(parse_duration).transpose();
    let rotate = args.rotate_size.as_deref().map(parse_size).transpose();
    let buffer = parse_size(&args.buffer_size);
    let (duration, rotate, buffer) = match (duration, rotate, buffer) {
        (Ok(d), Ok(r), Ok(b)) => (d, r, b),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
            writeln!(err, "shadowtap: error: {e:#}")?;
            return Ok(Status::BadInput);
        }
    };
    let filter = args.bpf.clone().unwrap_or_else(|| port_filter(&args.ports));
    let opened = pcap::Capture::from_device(args.interface.as_str()).and_then(|c| {
        c.snaplen(WRITER_SNAPLEN as i32)
            .buffer_size(i32::try_from(buffer).unwrap_or(i32::MAX))
            .immediate_mode(true)
            .timeout(READ_TIMEOUT_MS)
            .promisc(args.promisc)
            .open()
    });
    // Non-blocking: libpcap on Linux may ignore the read timeout in immediate mode and block
    // for ever on a quiet interface, and the stop conditions must be checked regardless.
    let mut cap = match opened.and_then(|c| c.setnonblock()) {
        Ok(c) => c,
        Err(e) => {
            writeln!(err, "shadowtap: error: {}", open_error(&args.interface, &e))?;
            return Ok(Status::BadInput);
        }
    };
    if let Err(e) = cap.filter(&filter, true) {
        writeln!(
            err,
            "shadowtap: error: invalid BPF expression {filter:?}: {e}"
        )?;
        return Ok(Status::BadInput);
    }
    let link =
        LinkType(u32::try_from(cap.get_datalink().0).map_err(|_| anyhow!("negative link type"))?);
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, stop.clone()).context("installing signal handlers")?;
    }

    writeln!(
        err,
        "shadowtap: capturing on {} ({filter}) to {}",
        args.interface,
        args.write.display()
    )?;

    let mut path = args.write.clone();
    let mut writer = create(&path, link)?;
    let mut written = 24u64;
    let mut files = 1u32;
    let limits = Limits::default();
    let mut decoder = Decoder::new(limits.wire);
    let mut reassembler = Reassembler::new(limits.reassembly);
    let mut exchanges = 0u64;
    let (mut packets, mut bytes) = (0u64, 0u64);
    let start = Instant::now();
    let deadline = duration.map(|d| start + d);
    {
        let mut tracker = Tracker::new(limits.http1, |_| exchanges += 1);
        loop {
            if stop.load(Ordering::Relaxed) || deadline.is_some_and(|d| Instant::now() >= d) {
                break;
            }
            let packet = match cap.next_packet() {
                Ok(p) => p,
                Err(pcap::Error::TimeoutExpired) => {
                    std::thread::sleep(IDLE_WAIT);
                    continue;
                }
                Err(e) => return Err(anyhow!("capture on {} failed: {e}", args.interface)),
            };
            let ts = Timestamp::from_nanos(
                packet
                    .header
                    .ts
                    .tv_sec
                    .saturating_mul(1_000_000_000)
                    .saturating_add(packet.header.ts.tv_usec.saturating_mul(1000)),
            );
            if rotate.is_some_and(|r| written >= r) {
                writer.flush()?;
                path = rotated(&args.write, files);
                files += 1;
                writer = create(&path, link)?;
                written = 24;
            }
            writer.write(ts, packet.data, packet.header.len)?;
            written += 16 + packet.data.len() as u64;
            packets += 1;
            bytes += packet.data.len() as u64;
            let frame = Frame {
                ts,
                link,
                data: packet.data,
                orig_len: packet.header.len,
            };
            if let Some(segment) = decoder.decode(&frame) {
                reassembler.push(&segment, &mut tracker);
            }
            if args
                .count
                .is_some_and(|n| tracker.counters().exchanges >= n)
            {
                break;
            }
        }
        reassembler.finish(&mut tracker);
    }
    writer.flush()?;
    let drops = cap
        .stats()
        .map(|s| (s.dropped, s.if_dropped))
        .unwrap_or((0, 0));
    writeln!(
        out,
        "captured {packets} packets ({bytes} bytes) in {:.1} s to {} file{}; {} dropped by the kernel, {} by the interface; {exchanges} HTTP exchanges",
        start.elapsed().as_secs_f64(),
        files,
        if files == 1 { "" } else { "s" },
        drops.0,
        drops.1
    )?;
    Ok(Status::Success)
}

/// The name of the `n`th rotated file: `PATH.n`.
fn rotated(base: &Path, n: u32) -> PathBuf {
    let mut name = base.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}
