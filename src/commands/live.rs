//! What `capture` and `mirror` share: opening libpcap on an interface with the project's
//! settings, the BPF filter from `--port`, stop conditions (`--duration`, SIGINT, SIGTERM),
//! dropping privileges (`--user`), and reading packets without ever blocking.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};

use crate::capture::{Frame, LinkType, Timestamp, WRITER_SNAPLEN};
use crate::cli::LiveArgs;
use crate::settings::{parse_duration, parse_size};

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
    pub fn open(args: &LiveArgs, exclude: Option<&str>) -> anyhow::Result<Live> {
        let duration = args.duration.as_deref().map(parse_duration).transpose()?;
        let buffer = parse_size(&args.buffer_size)?;
        let mut filter = args.bpf.clone().unwrap_or_else(|| port_filter(&args.ports));
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

/// Drops to `user` for `--user`, once the capture (and any output file) is open, and says so
/// on `err` (RELIABILITY.md S01; tcpdump's `droproot`): no supplementary groups, its primary
/// group, its uid, an empty capability bounding set and `PR_SET_NO_NEW_PRIVS`, so neither a
/// set-uid program nor a file capability can give anything back. Called before any thread is
/// started: the bounding set and `no_new_privs` belong to a thread and are inherited by the
/// threads it starts.
pub fn drop_privileges(user: &str, err: &mut dyn std::io::Write) -> anyhow::Result<()> {
    let (uid, gid) = lookup_user(user)?;
    let fail = |what: &str| {
        anyhow!(
            "--user {user:?}: {what}: {}",
            std::io::Error::last_os_error()
        )
    };
    // SAFETY: plain system calls on integers and a null list; their results are checked.
    unsafe {
        if libc::setgroups(0, std::ptr::null()) != 0 {
            return Err(fail("setgroups"));
        }
    }
    // Needs CAP_SETPCAP, which setuid below takes away: first.
    drop_bounding_set().map_err(|e| anyhow!("--user {user:?}: {e}"))?;
    // SAFETY: as above.
    unsafe {
        if libc::setgid(gid) != 0 {
            return Err(fail("setgid"));
        }
        if libc::setuid(uid) != 0 {
            return Err(fail("setuid"));
        }
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            return Err(fail("PR_SET_NO_NEW_PRIVS"));
        }
        // Make sure there is no way back.
        if uid != 0 && libc::setuid(0) == 0 {
            bail!("--user {user:?}: could still regain root");
        }
    }
    writeln!(
        err,
        "shadowtap: dropped privileges to {user} (uid {uid}, gid {gid})"
    )?;
    Ok(())
}

/// The uid and primary gid of `user`.
fn lookup_user(user: &str) -> anyhow::Result<(libc::uid_t, libc::gid_t)> {
    let name =
        std::ffi::CString::new(user).map_err(|_| anyhow!("--user {user:?}: invalid name"))?;
    // SAFETY: getpwnam_r writes into the buffers we pass, sized as given; the result pointer
    // is either null or points at `pw`.
    unsafe {
        let mut pw: libc::passwd = std::mem::zeroed();
        let mut buf = vec![0 as libc::c_char; 16 * 1024];
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let rc = libc::getpwnam_r(
            name.as_ptr(),
            &mut pw,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        );
        if rc != 0 || result.is_null() {
            bail!("--user {user:?}: no such user");
        }
        Ok((pw.pw_uid, pw.pw_gid))
    }
}

/// Where the kernel says how many capabilities it knows.
const CAP_LAST_CAP: &str = "/proc/sys/kernel/cap_last_cap";
/// Capabilities tried when that file cannot be read (the kernel refuses the rest with EINVAL).
const CAP_LAST_FALLBACK: u32 = 63;

/// Empties the capability bounding set: every capability up to the kernel's last one.
fn drop_bounding_set() -> anyhow::Result<()> {
    let last = std::fs::read_to_string(CAP_LAST_CAP)
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .unwrap_or(CAP_LAST_FALLBACK);
    for cap in 0..=last {
        // SAFETY: a plain system call on integers; its result is checked.
        let rc = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(cap), 0, 0, 0) };
        if rc != 0 {
            let e = std::io::Error::last_os_error();
            // Beyond what this kernel knows: nothing left to drop.
            if e.raw_os_error() == Some(libc::EINVAL) {
                break;
            }
            bail!("dropping capability {cap} from the bounding set: {e}");
        }
    }
    Ok(())
}
