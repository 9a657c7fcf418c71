//! Live capture (`capture` and `mirror`): opening libpcap on an interface with the project's
//! settings, the BPF filter from `--port`, stop conditions (`--duration`, SIGINT, SIGTERM),
//! and reading packets without ever blocking. What to open comes parsed ([`LiveConfig`],
//! built by `settings` from the command line); dropping privileges is `crate::privileges`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};

use crate::capture::{Frame, LinkType, Timestamp, WRITER_SNAPLEN};

/// The read timeout handed to libpcap: on Linux the kernel hands over a block of packets when
/// it is full or this old, so it bounds how late a packet reaches the pipeline.
///
/// Not immediate mode: libpcap implements that with TPACKET_V2, a ring of fixed slots each
/// the size of the largest frame (64 KiB on `lo`, up to the snaplen with offloads), so a
/// 16 MiB buffer holds only a few hundred packets and a burst overflows it. Without it
/// (TPACKET_V3, as tcpdump uses when writing a file) packets are packed into the buffer by
/// their real size, and the same 16 MiB holds tens of thousands.
const READ_TIMEOUT_MS: i32 = 10;
/// The longest wait for a packet before the stop conditions are checked again.
pub const IDLE_WAIT: Duration = Duration::from_millis(20);

/// The BPF filter `--port` stands for: both directions of each port, so responses are seen.
pub fn port_filter(ports: &[u16]) -> String {
    if ports.is_empty() {
        return "tcp".into();
    }
    let each: Vec<String> = ports.iter().map(|p| format!("tcp port {p}")).collect();
    each.join(" or ")
}

/// The message for a capture that could not be opened: privileges say how to get them.
pub fn open_error(interface: &str, e: &pcap::Error) -> String {
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

/// What to capture, parsed from the command line (`--interface`, `--port`/`--bpf`,
/// `--duration`, `--buffer-size`, `--promisc`).
#[derive(Clone, Debug)]
pub struct LiveConfig {
    pub interface: String,
    /// The BPF expression: `--bpf`, or the one `--port` stands for ([`port_filter`]).
    pub filter: String,
    /// `--duration`: stop this long after the capture opened.
    pub duration: Option<Duration>,
    /// `--buffer-size` in bytes: the kernel's capture buffer.
    pub buffer: u64,
    pub promisc: bool,
}

/// An open live capture.
pub struct Live {
    cap: pcap::Capture<pcap::Active>,
    pub link: LinkType,
    pub filter: String,
    stop: Arc<AtomicBool>,
    deadline: Option<Instant>,
    pub started: Instant,
}

/// What [`Live::next_packet`] found.
pub enum Next<'a> {
    Packet(Frame<'a>),
    /// Nothing waiting right now.
    Idle,
    /// `--duration` elapsed, or SIGINT or SIGTERM arrived.
    Stop,
}

impl Live {
    /// Opens the capture; `exclude` is a BPF expression for traffic never to capture (the
    /// replayer's own). Errors are one line, ready for the user.
    pub fn open(args: &LiveConfig, exclude: Option<&str>) -> anyhow::Result<Live> {
        let (duration, buffer) = (args.duration, args.buffer);
        let mut filter = args.filter.clone();
        if let Some(not) = exclude {
            filter = format!("({filter}) and not ({not})");
        }
        let opened = pcap::Capture::from_device(args.interface.as_str()).and_then(|c| {
            c.snaplen(WRITER_SNAPLEN as i32)
                .buffer_size(i32::try_from(buffer).unwrap_or(i32::MAX))
                .immediate_mode(false)
                .timeout(READ_TIMEOUT_MS)
                .promisc(args.promisc)
                .open()
        });
        // Non-blocking: the loop checks the stop conditions between waits of its own (see
        // [`Live::wait`]) whatever the traffic, and never sits inside libpcap.
        let mut cap = opened
            .and_then(|c| c.setnonblock())
            .map_err(|e| anyhow!(open_error(&args.interface, &e)))?;
        cap.filter(&filter, true)
            .map_err(|e| anyhow!("invalid BPF expression {filter:?}: {e}"))?;
        let link = LinkType(
            u32::try_from(cap.get_datalink().0).map_err(|_| anyhow!("negative link type"))?,
        );
        let stop = Arc::new(AtomicBool::new(false));
        for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            signal_hook::flag::register(signal, stop.clone())
                .context("installing signal handlers")?;
        }
        let started = Instant::now();
        Ok(Live {
            cap,
            link,
            filter,
            stop,
            deadline: duration.map(|d| started + d),
            started,
        })
    }

    /// The next packet, without blocking.
    pub fn next_packet(&mut self) -> anyhow::Result<Next<'_>> {
        if self.stop.load(Ordering::Relaxed) || self.deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(Next::Stop);
        }
        let packet = match self.cap.next_packet() {
            Ok(p) => p,
            Err(pcap::Error::TimeoutExpired) => return Ok(Next::Idle),
            Err(e) => bail!("capture failed: {e}"),
        };
        let ts = Timestamp::from_nanos(
            packet
                .header
                .ts
                .tv_sec
                .saturating_mul(1_000_000_000)
                .saturating_add(packet.header.ts.tv_usec.saturating_mul(1000)),
        );
        Ok(Next::Packet(Frame {
            ts,
            link: self.link,
            data: packet.data,
            orig_len: packet.header.len,
        }))
    }

    /// Waits until a packet may be waiting (or `limit` passed), without spinning: polls the
    /// capture's descriptor.
    pub fn wait(&self, limit: Duration) {
        use std::os::fd::AsRawFd;
        let mut fd = libc::pollfd {
            fd: self.cap.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = i32::try_from(limit.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: one valid pollfd for the duration of the call. An error or a signal
        // (EINTR) just ends the wait early, which the caller tolerates.
        unsafe {
            libc::poll(&mut fd, 1, ms);
        }
    }

    /// Packets dropped by the kernel (buffer full) and by the interface, so far.
    pub fn drops(&mut self) -> (u64, u64) {
        self.cap
            .stats()
            .map(|s| (u64::from(s.dropped), u64::from(s.if_dropped)))
            .unwrap_or((0, 0))
    }
}
