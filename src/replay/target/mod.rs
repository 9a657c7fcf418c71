//! The production-target rule (DESIGN.md "Safety"): a request is never sent to an
//! address:port that is a server in the captured traffic, since that would send production
//! its own traffic a second time.
//!
//! Addresses are compared in canonical form: a v4-mapped IPv6 address is its IPv4 address, an
//! unspecified target (`0.0.0.0`, `::`) stands for every local address, and a target named
//! by a host name stands for every address the name resolved to. A target on this machine
//! (loopback, unspecified, or an address of one of its interfaces) is taken to be every
//! address of this machine on its port: a server listening on all addresses answers on each
//! of them, so `127.0.0.1:8080` reaches a production server seen at `10.1.2.3:8080` when that
//! is this machine's address. The rule holds for every target (the shadow, and a baseline
//! when there is one).

use std::cell::Cell;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::rc::Rc;

use anyhow::{anyhow, Context as _};

use crate::http1::Exchange;
use crate::pipeline::Front;
use crate::reassembly::{EventKind, Reassembler, StreamEvent, StreamSink};
use crate::replay::select::{Selection, Skip};
use crate::replay::tls::{self, Tls, TlsSpec};
use crate::wire::Segment;

/// An address as the rule compares it: v4-mapped IPv6 as IPv4, no flow info or scope.
pub fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(canonical_ip(addr.ip()), addr.port())
}

fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

/// Where requests go: what the user wrote (for messages) and every address it stands for.
#[derive(Clone, Debug)]
pub struct Target {
    /// `shadow` (or `baseline`): which flag named it.
    pub role: &'static str,
    /// The URL as given.
    pub url: String,
    /// Every address the URL's host resolved to, canonical.
    pub addrs: Vec<SocketAddr>,
}

impl Target {
    pub fn new(role: &'static str, url: &str, addrs: &[SocketAddr]) -> Target {
        let mut addrs: Vec<SocketAddr> = addrs.iter().copied().map(canonical).collect();
        addrs.sort_unstable();
        addrs.dedup();
        Target {
            role,
            url: url.to_string(),
            addrs,
        }
    }
}

/// This machine's addresses, by interface: what an unspecified target stands for, and what
/// "local to the capture" means for a live capture.
#[derive(Clone, Debug, Default)]
pub struct LocalAddrs {
    /// (interface, canonical address), from the kernel's list.
    pub by_interface: Vec<(String, IpAddr)>,
}

impl LocalAddrs {
    /// The addresses of every interface (`getifaddrs`, no privilege needed). An error leaves
    /// the list empty: loopback addresses are still known to be local.
    pub fn of_this_machine() -> LocalAddrs {
        let mut by_interface = Vec::new();
        let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
        // SAFETY: getifaddrs fills `head` with a list that stays valid until freeifaddrs; each
        // entry's name is a C string and its address, when not null, a sockaddr of the family
        // it says, read here only as that family's struct.
        unsafe {
            if libc::getifaddrs(&mut head) != 0 {
                return LocalAddrs::default();
            }
            let mut at = head;
            while let Some(ifa) = at.as_ref() {
                let ip = match ifa.ifa_addr.as_ref().map(|a| i32::from(a.sa_family)) {
                    Some(libc::AF_INET) => {
                        let sin = &*(ifa.ifa_addr as *const libc::sockaddr_in);
                        Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                            sin.sin_addr.s_addr,
                        ))))
                    }
                    Some(libc::AF_INET6) => {
                        let sin6 = &*(ifa.ifa_addr as *const libc::sockaddr_in6);
                        Some(IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)))
                    }
                    _ => None,
                };
                if let Some(ip) = ip {
                    let name = std::ffi::CStr::from_ptr(ifa.ifa_name).to_string_lossy();
                    by_interface.push((name.into_owned(), canonical_ip(ip)));
                }
                at = ifa.ifa_next;
            }
            libc::freeifaddrs(head);
        }
        LocalAddrs { by_interface }
    }

    /// Whether connecting to `ip` reaches this machine.
    pub fn is_local(&self, ip: IpAddr) -> bool {
        let ip = canonical_ip(ip);
        ip.is_loopback() || ip.is_unspecified() || self.by_interface.iter().any(|(_, a)| *a == ip)
    }

    /// The addresses of `interface` (every local address for `any`, every loopback one for a
    /// loopback interface, which carries all of 127.0.0.0/8).
    pub fn of_interface(&self, interface: &str) -> Vec<IpAddr> {
        let mut out: Vec<IpAddr> = self
            .by_interface
            .iter()
            .filter(|(name, _)| interface == "any" || name == interface)
            .map(|(_, a)| *a)
            .collect();
        if interface == "any" || interface == "lo" {
            out.extend([
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(Ipv6Addr::LOCALHOST),
            ]);
        }
        out.sort_unstable();
        out.dedup();
        out
    }
}

/// The rule applied to a run: the targets, this machine's addresses, and whether a target
/// has been seen as a server (from then on nothing more is sent).
#[derive(Clone, Debug)]
pub struct Guard {
    targets: Vec<Target>,
    /// Every port a target listens on, sorted: a server on another port is no target, so
    /// most segments of a capture are settled by this short list alone (the pass over the
    /// files asks about both ends of every segment).
    ports: Vec<u16>,
    local: LocalAddrs,
    /// `--allow-production-target`: the rule is off (A/A runs against production itself).
    allow: bool,
    /// The first target seen as a server, and the server address it was seen as.
    seen: Option<(usize, SocketAddr)>,
}

impl Guard {
    pub fn new(targets: Vec<Target>, local: LocalAddrs, allow: bool) -> Guard {
        let mut ports: Vec<u16> = targets
            .iter()
            .flat_map(|t| t.addrs.iter().map(|a| a.port()))
            .collect();
        ports.sort_unstable();
        ports.dedup();
        Guard {
            targets,
            ports,
            local,
            allow,
            seen: None,
        }
    }

    /// The target that `server` is (in canonical form), if any, whether or not the rule is on.
    pub fn target_of(&self, server: SocketAddr) -> Option<&Target> {
        self.find(server).map(|i| &self.targets[i])
    }

    /// Whether some target listens on `port`: every address a target stands for has one of
    /// the targets' ports, so no other port can be one.
    #[inline]
    #[allow(
        clippy::manual_contains,
        reason = "contains on this short slice compiles to a call per question; the loop inlines"
    )]
    pub fn is_target_port(&self, port: u16) -> bool {
        self.ports.iter().any(|&p| p == port)
    }

    fn find(&self, server: SocketAddr) -> Option<usize> {
        if !self.is_target_port(server.port()) {
            return None;
        }
        let server = canonical(server);
        self.targets.iter().position(|t| {
            t.addrs.iter().any(|a| {
                *a == server
                    || (a.port() == server.port()
                        && self.local.is_local(a.ip())
                        && self.local.is_local(server.ip()))
            })
        })
    }

    /// Stop at first sight: once a request's server is a target, it and every later request
    /// are refused, whatever their server (sending stops at once).
    pub fn check(&mut self, server: SocketAddr) -> Result<(), Skip> {
        if self.allow {
            return Ok(());
        }
        if self.seen.is_none() {
            self.seen = self.find(server).map(|i| (i, server));
        }
        match self.seen {
            Some(_) => Err(Skip::ProductionTarget),
            None => Ok(()),
        }
    }

    /// The target first seen as a server, and as which server address.
    pub fn seen(&self) -> Option<(&Target, SocketAddr)> {
        self.seen.and_then(|(i, s)| Some((self.targets.get(i)?, s)))
    }

    pub fn allowed(&self) -> bool {
        self.allow
    }

    pub fn targets(&self) -> &[Target] {
        &self.targets
    }

    /// For a live capture on `interface`: the first address of that interface, on a target's
    /// port, that `admits` (the capture's filter, asked for a TCP packet to or from that
    /// address) lets in, where the target is on this machine. Such a target would be captured
    /// as production. Whether the rule is on is the caller's to decide (`--allow-production-
    /// target` still needs to know, to keep such traffic visible).
    pub fn local_to_capture(
        &self,
        interface: &str,
        mut admits: impl FnMut(SocketAddr) -> bool,
    ) -> Option<(&Target, SocketAddr)> {
        let here = self.local.of_interface(interface);
        for t in &self.targets {
            for a in t.addrs.iter().filter(|a| self.local.is_local(a.ip())) {
                let hit = here
                    .iter()
                    .map(|ip| SocketAddr::new(*ip, a.port()))
                    .find(|c| admits(*c));
                if let Some(hit) = hit {
                    return Some((t, hit));
                }
            }
        }
        None
    }

    /// The BPF expression for the replayer's own traffic to `dest`: packets between `dest`
    /// and an address of this machine. Only those: a production server that happens to be the
    /// shadow (seen from a tap port, talking to other machines) stays visible, so the rule
    /// can see it.
    pub fn own_traffic_filter(&self, dest: SocketAddr) -> String {
        let mut local: Vec<IpAddr> = self.local.by_interface.iter().map(|(_, a)| *a).collect();
        local.sort_unstable();
        local.dedup();
        let base = format!("host {} and tcp port {}", dest.ip(), dest.port());
        if local.is_empty() || self.local.is_local(dest.ip()) {
            // With a local shadow both ends are local anyway.
            return base;
        }
        let hosts: Vec<String> = local.iter().map(|a| format!("host {a}")).collect();
        format!("{base} and ({})", hosts.join(" or "))
    }
}

/// Passes stream events on to `sink`, noting in `seen` the first connection opened with a
/// target as its server (either end, when the roles are a guess). In a replay from a pipe or
/// in mirror it makes the stop-at-first-sight rule hold also for a production server none of
/// whose requests ever becomes an exchange (the pass over capture files is [`ServerScan`]).
pub struct Opens<'a, S> {
    pub sink: &'a mut S,
    pub guard: &'a Guard,
    pub seen: &'a Cell<Option<SocketAddr>>,
}

impl<S: StreamSink> StreamSink for Opens<'_, S> {
    fn event(&mut self, ev: StreamEvent<'_>) {
        if let EventKind::Open {
            client,
            server,
            midstream,
        } = ev.kind
        {
            if self.seen.get().is_none() {
                let ends = if midstream { 2 } else { 1 };
                let hit = [server, client]
                    .into_iter()
                    .take(ends)
                    .find(|a| self.guard.target_of(*a).is_some());
                self.seen.set(hit);
            }
        }
        self.sink.event(ev);
    }
}

/// The pass over capture files made before anything is sent, one TCP segment at a time:
/// decode only, no reassembly (the pass costs little next to the replay itself). A target
/// that is an endpoint of a segment is a server in the capture, unless it opened that
/// connection (its SYN was seen): then it is that connection's client. A connection picked
/// up without its handshake therefore counts both ends, as the reassembler's guess would.
#[derive(Default)]
pub struct ServerScan {
    /// (target endpoint, peer) pairs where the target sent the SYN: client connections.
    clients: std::collections::HashSet<(SocketAddr, SocketAddr)>,
}

/// Client connections of a target remembered at most; past it they count as servers (the
/// safe side: a refusal, never a request to production).
const SCAN_CLIENTS: usize = 65_536;

impl ServerScan {
    /// The target this segment shows as a server, if any.
    #[inline]
    pub fn segment(&mut self, guard: &Guard, seg: &crate::wire::Segment<'_>) -> Option<SocketAddr> {
        // Most segments: neither end on a target's port, so neither end is a target.
        if !guard.is_target_port(seg.src.port()) && !guard.is_target_port(seg.dst.port()) {
            return None;
        }
        self.on_target_port(guard, seg)
    }

    /// [`ServerScan::segment`] for a segment with an end on a target's port.
    #[inline(never)]
    fn on_target_port(
        &mut self,
        guard: &Guard,
        seg: &crate::wire::Segment<'_>,
    ) -> Option<SocketAddr> {
        let opening = seg.flags.syn() && !seg.flags.ack();
        for (end, peer, from_end) in [(seg.dst, seg.src, false), (seg.src, seg.dst, true)] {
            if guard.target_of(end).is_none() {
                continue;
            }
            let key = (canonical(end), canonical(peer));
            if from_end && opening {
                if self.clients.len() < SCAN_CLIENTS {
                    self.clients.insert(key);
                    continue;
                }
                return Some(end);
            }
            if !self.clients.contains(&key) {
                return Some(end);
            }
        }
        None
    }
}

/// A TCP SYN from an arbitrary client to `to`, as an Ethernet frame: what a capture filter is
/// asked about to tell whether it admits traffic to a target. Checksums are left zero (BPF
/// does not read them).
pub fn probe_frame(to: SocketAddr, reply: bool) -> Vec<u8> {
    let (client, ethertype): (IpAddr, u16) = match to.ip() {
        IpAddr::V4(_) => (IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), 0x0800),
        IpAddr::V6(_) => (
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
            0x86dd,
        ),
    };
    let peer = SocketAddr::new(client, 40_000);
    let (src, dst) = if reply { (to, peer) } else { (peer, to) };
    let mut tcp = [0u8; 20];
    tcp[0..2].copy_from_slice(&src.port().to_be_bytes());
    tcp[2..4].copy_from_slice(&dst.port().to_be_bytes());
    tcp[12] = 5 << 4;
    tcp[13] = if reply { 0x12 } else { 0x02 };
    let mut frame = vec![0u8; 12];
    frame.extend_from_slice(&ethertype.to_be_bytes());
    match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            frame.extend_from_slice(&[0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0]);
            frame.extend_from_slice(&s.octets());
            frame.extend_from_slice(&d.octets());
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            frame.extend_from_slice(&[0x60, 0, 0, 0, 0, 20, 6, 64]);
            frame.extend_from_slice(&s.octets());
            frame.extend_from_slice(&d.octets());
        }
        _ => {}
    }
    frame.extend_from_slice(&tcp);
    frame
}

/// `--shadow` as the command line gives it, parsed and checked but not resolved: settings
/// do no I/O, [`resolve`] does it before the run.
#[derive(Clone, Debug)]
pub struct ShadowSpec {
    /// The URL as typed, for messages and the production-target rule.
    pub url: String,
    /// `host:port` to resolve (the scheme's port when none was given).
    pub host_port: String,
    /// TLS for an `https://` shadow.
    pub tls: Option<TlsSpec>,
}

/// The shadow a run sends to: every address its host resolved to, and its TLS setup.
#[derive(Clone, Debug)]
pub struct Shadow {
    /// The address requests go to: the first one the host resolved to.
    pub addr: SocketAddr,
    /// The shadow as the production-target rule sees it.
    pub target: Target,
    pub tls: Option<Tls>,
}

/// Resolves the shadow's host name and loads its TLS configuration (CA files, the system's
/// certificates). Errors are one line, ready for the user.
pub fn resolve(spec: &ShadowSpec) -> anyhow::Result<Shadow> {
    let resolved: Vec<SocketAddr> = spec
        .host_port
        .to_socket_addrs()
        .with_context(|| format!("--shadow {:?}: cannot resolve {}", spec.url, spec.host_port))?
        .collect();
    let addr = *resolved
        .first()
        .ok_or_else(|| anyhow!("--shadow {:?}: no address for {}", spec.url, spec.host_port))?;
    let tls = spec
        .tls
        .as_ref()
        .map(|t| tls::config(&t.host, t.ca.as_deref(), t.insecure))
        .transpose()?;
    Ok(Shadow {
        addr,
        target: Target::new("shadow", &spec.url, &resolved),
        tls,
    })
}

/// The production-target rule on the exchanges of a run (`replay` and `mirror`): the
/// server of every exchange is checked, and once one is a target nothing more is sent
/// (unless `--allow-production-target`).
pub struct ProductionTarget {
    pub guard: Guard,
    /// A target seen as the server of a connection as it opened (by [`Opens`]), not yet
    /// taken into `guard`.
    pub opened: Rc<Cell<Option<SocketAddr>>>,
}

impl ProductionTarget {
    /// The rule for a run sending to `shadow`; `allow` is `--allow-production-target`.
    pub fn new(shadow: Target, local: LocalAddrs, allow: bool) -> ProductionTarget {
        ProductionTarget {
            guard: Guard::new(vec![shadow], local, allow),
            opened: Rc::default(),
        }
    }

    /// The selection verdict on `ex`: `--allow-method`, paths, sampling and the rest
    /// (`selection`) first, then the production-target check (which sees every exchange's
    /// server, and every connection opened before it).
    pub fn select(&mut self, selection: &Selection, ex: &Exchange) -> Result<(), Skip> {
        if let Some(server) = self.opened.take() {
            let _ = self.guard.check(server);
        }
        let target = self.guard.check(ex.server);
        selection.check(ex).and(target)
    }

    /// What [`Opens`] needs to watch the connections of the run for this rule.
    pub fn watch(&self) -> (Guard, Rc<Cell<Option<SocketAddr>>>) {
        (self.guard.clone(), self.opened.clone())
    }
}

/// The production-target watch in front of the tracker (a pipeline [`Front`]): [`Opens`]
/// sees each connection as it opens.
pub struct Watch<'a> {
    pub guard: &'a Guard,
    pub seen: &'a Cell<Option<SocketAddr>>,
}

impl Front for Watch<'_> {
    #[inline]
    fn push<K: StreamSink>(
        &mut self,
        reassembler: &mut Reassembler,
        segment: &Segment<'_>,
        sink: &mut K,
    ) {
        let mut watched = Opens {
            sink,
            guard: self.guard,
            seen: self.seen,
        };
        reassembler.push(segment, &mut watched);
    }
}

#[cfg(test)]
mod tests;
