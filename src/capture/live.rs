//! Live capture (`capture` and `mirror`): opening libpcap on an interface with the project's
//! settings, the BPF filter from `--port`, stop conditions (`--duration`, a [`Stop`] that the
//! binary triggers on SIGINT and SIGTERM), and reading packets without ever blocking. What to
//! open comes parsed ([`LiveConfig`], built by `settings` from the command line); dropping
//! privileges is `crate::privileges`.
//!
//! A run reads its frames from a [`Source`]: libpcap on the interface ([`Live`]) in
//! production, or the frames of a capture file ([`Replayed`]) so that `capture` and `mirror`
//! run in-process, without privilege, in tests.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};

use crate::capture::filter::BpfFilter;
use crate::capture::{CaptureReader, Frame, LinkType, Timestamp, WRITER_SNAPLEN};

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

/// Asks a live run to end, as SIGINT and SIGTERM do: the binary triggers it from its signal
/// thread (`commands::Interrupts`), a test or an embedding caller whenever it likes. Clones
/// share one count of how many times it was triggered. It is armed when the capture opens:
/// until then the binary lets a signal end the process, as it always did.
#[derive(Clone, Default)]
pub struct Stop(Arc<StopInner>);

/// What to run on each trigger, with how many came so far (1 for the first).
type OnTrigger = Box<dyn Fn(usize) + Send>;

#[derive(Default)]
struct StopInner {
    armed: AtomicBool,
    asked: AtomicUsize,
    on: Mutex<Option<OnTrigger>>,
}

impl Stop {
    pub fn new() -> Stop {
        Stop::default()
    }

    /// Asks the run to end (the first time), and runs the callback set by
    /// [`Stop::on_trigger`], if any, with the number of triggers so far.
    pub fn trigger(&self) {
        let n = self.0.asked.fetch_add(1, Ordering::SeqCst) + 1;
        if let Ok(on) = self.0.on.lock() {
            if let Some(f) = on.as_ref() {
                f(n);
            }
        }
    }

    /// The capture is open: from now on a trigger ends the run, not the process.
    fn arm(&self) {
        self.0.armed.store(true, Ordering::SeqCst);
    }

    /// Whether the capture has opened (see [`Stop::arm`]).
    pub fn armed(&self) -> bool {
        self.0.armed.load(Ordering::SeqCst)
    }

    /// Whether the run was asked to end.
    pub fn asked(&self) -> bool {
        self.0.asked.load(Ordering::SeqCst) > 0
    }

    /// Runs `f` on every later trigger (mirror cuts its drain on a second one) until the
    /// returned guard is dropped.
    pub fn on_trigger(&self, f: impl Fn(usize) + Send + 'static) -> Watching<'_> {
        if let Ok(mut on) = self.0.on.lock() {
            *on = Some(Box::new(f));
        }
        Watching(self)
    }
}

/// Keeps a [`Stop::on_trigger`] callback for as long as it lives.
pub struct Watching<'a>(&'a Stop);

impl Drop for Watching<'_> {
    fn drop(&mut self) {
        if let Ok(mut on) = self.0 .0.on.lock() {
            *on = None;
        }
    }
}

/// Where a live run reads its frames from.
#[derive(Clone, Debug)]
pub enum Source {
    /// libpcap on `--interface`: what the binary uses.
    Interface,
    /// The frames of a capture file, filtered by the same BPF expression, with no drops:
    /// what tests run `capture` and `mirror` on, without privilege.
    File(FileSource),
}

/// A capture file read as if it were coming off an interface.
#[derive(Clone, Debug)]
pub struct FileSource {
    pub path: PathBuf,
    /// Each frame is handed out no earlier than its time in the file after the first frame's
    /// (as it came on the wire); otherwise as fast as they are asked for.
    pub paced: bool,
    /// At the end of the file, go on as an interface with no more traffic would (idle until
    /// `--duration` or the [`Stop`]); otherwise the end of the file ends the run.
    pub idle_at_end: bool,
}

impl Source {
    /// Opens the source with the same filter, `exclude` expression (traffic never to
    /// capture: the replayer's own), stop conditions and errors as [`Live::open`].
    pub fn open(
        &self,
        args: &LiveConfig,
        exclude: Option<&str>,
        stop: &Stop,
    ) -> anyhow::Result<Frames> {
        match self {
            Source::Interface => Live::open(args, exclude, stop).map(Frames::Pcap),
            Source::File(file) => {
                Replayed::open(file, args, exclude, stop).map(|r| Frames::File(Box::new(r)))
            }
        }
    }
}

/// An open [`Source`].
pub enum Frames {
    Pcap(Live),
    /// Boxed: the reader and its buffers are far larger than a libpcap handle.
    File(Box<Replayed>),
}

impl Frames {
    /// The link type of the frames (of the file's first frame, for a file).
    pub fn link(&self) -> LinkType {
        match self {
            Frames::Pcap(l) => l.link,
            Frames::File(r) => r.link,
        }
    }

    /// The BPF expression applied, with the exclusion.
    pub fn filter(&self) -> &str {
        match self {
            Frames::Pcap(l) => &l.filter,
            Frames::File(r) => &r.filter_expr,
        }
    }

    /// When the source was opened.
    pub fn started(&self) -> Instant {
        match self {
            Frames::Pcap(l) => l.started,
            Frames::File(r) => r.started,
        }
    }

    /// The next frame, without blocking.
    #[inline]
    pub fn next_packet(&mut self) -> anyhow::Result<Next<'_>> {
        match self {
            Frames::Pcap(l) => l.next_packet(),
            Frames::File(r) => r.next_packet(),
        }
    }

    /// Waits until a frame may be waiting, at most `limit`.
    pub fn wait(&self, limit: Duration) {
        match self {
            Frames::Pcap(l) => l.wait(limit),
            Frames::File(r) => r.wait(limit),
        }
    }

    /// Frames dropped by the kernel and by the interface so far (none from a file).
    pub fn drops(&mut self) -> (u64, u64) {
        match self {
            Frames::Pcap(l) => l.drops(),
            Frames::File(_) => (0, 0),
        }
    }
}

/// The expression a capture applies: `filter`, without what `exclude` matches.
fn combined(filter: &str, exclude: Option<&str>) -> String {
    match exclude {
        Some(not) => format!("({filter}) and not ({not})"),
        None => filter.to_string(),
    }
}

/// An open live capture.
pub struct Live {
    cap: pcap::Capture<pcap::Active>,
    pub link: LinkType,
    pub filter: String,
    stop: Stop,
    deadline: Option<Instant>,
    pub started: Instant,
}

/// What [`Live::next_packet`] found.
pub enum Next<'a> {
    Packet(Frame<'a>),
    /// Nothing waiting right now.
    Idle,
    /// `--duration` elapsed, the [`Stop`] was triggered (SIGINT or SIGTERM), or a file
    /// source ended.
    Stop,
}

impl Live {
    /// Opens the capture; `exclude` is a BPF expression for traffic never to capture (the
    /// replayer's own). Errors are one line, ready for the user.
    pub fn open(args: &LiveConfig, exclude: Option<&str>, stop: &Stop) -> anyhow::Result<Live> {
        let (duration, buffer) = (args.duration, args.buffer);
        let filter = combined(&args.filter, exclude);
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
        stop.arm();
        let started = Instant::now();
        Ok(Live {
            cap,
            link,
            filter,
            stop: stop.clone(),
            deadline: duration.map(|d| started + d),
            started,
        })
    }

    /// The next packet, without blocking.
    pub fn next_packet(&mut self) -> anyhow::Result<Next<'_>> {
        if self.stop.asked() || self.deadline.is_some_and(|d| Instant::now() >= d) {
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

/// A capture file read as a live source ([`FileSource`]): the frames the filter admits, in
/// file order, paced by their timestamps or not.
pub struct Replayed {
    reader: CaptureReader<Box<dyn std::io::Read + Send>>,
    bpf: BpfFilter,
    link: LinkType,
    filter_expr: String,
    stop: Stop,
    deadline: Option<Instant>,
    started: Instant,
    paced: bool,
    idle_at_end: bool,
    /// The first frame's time: pacing counts from it.
    first: Option<Timestamp>,
    /// The reader's current frame has not been handed out yet (it was not due).
    pending: bool,
    ended: bool,
}

impl Replayed {
    fn open(
        file: &FileSource,
        args: &LiveConfig,
        exclude: Option<&str>,
        stop: &Stop,
    ) -> anyhow::Result<Replayed> {
        let filter_expr = combined(&args.filter, exclude);
        let bpf = BpfFilter::new(&filter_expr).map_err(|e| anyhow!("{e}"))?;
        let mut reader = CaptureReader::open(&file.path).map_err(|e| anyhow!("{e}"))?;
        // The first frame is read now, for its link type and the time pacing counts from.
        let pending = reader.advance().map_err(|e| anyhow!("{e}"))?;
        let head = reader.current().map(|f| (f.link, f.ts));
        stop.arm();
        let started = Instant::now();
        Ok(Replayed {
            reader,
            bpf,
            link: head.map_or(LinkType::ETHERNET, |(link, _)| link),
            filter_expr,
            stop: stop.clone(),
            deadline: args.duration.map(|d| started + d),
            started,
            paced: file.paced,
            idle_at_end: file.idle_at_end,
            first: head.map(|(_, ts)| ts),
            pending,
            ended: !pending,
        })
    }

    /// How long after opening the current frame is due (zero when not paced).
    fn due(&self, ts: Timestamp) -> Duration {
        match (self.paced, self.first) {
            (true, Some(first)) => {
                Duration::from_nanos(u64::try_from(ts.0.saturating_sub(first.0)).unwrap_or(0))
            }
            _ => Duration::ZERO,
        }
    }

    fn next_packet(&mut self) -> anyhow::Result<Next<'_>> {
        if self.stop.asked() || self.deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(Next::Stop);
        }
        // Moves to the next frame the filter admits (the current one, if not handed out).
        loop {
            if !self.pending {
                if self.ended || !self.reader.advance().map_err(|e| anyhow!("{e}"))? {
                    self.ended = true;
                    return Ok(if self.idle_at_end {
                        Next::Idle
                    } else {
                        Next::Stop
                    });
                }
                self.pending = true;
            }
            let admitted = match self.reader.current() {
                Some(frame) => self.bpf.matches(&frame),
                None => false,
            };
            if admitted {
                break;
            }
            self.pending = false;
        }
        let Some(frame) = self.reader.current() else {
            return Ok(Next::Idle);
        };
        if self.started.elapsed() < self.due(frame.ts) {
            return Ok(Next::Idle);
        }
        self.pending = false;
        Ok(Next::Packet(frame))
    }

    /// Sleeps until the next frame is due, or `limit`; not at all when one is waiting.
    fn wait(&self, limit: Duration) {
        let until = match self.reader.current() {
            _ if self.ended => limit,
            Some(frame) if self.pending => (self.due(frame.ts))
                .saturating_sub(self.started.elapsed())
                .min(limit),
            _ => Duration::ZERO,
        };
        if !until.is_zero() {
            std::thread::sleep(until);
        }
    }
}
