//! The flow table: finding a segment's connection, roles, handshake, FIN/RST, reuse, idle
//! timeouts and eviction.

use std::collections::HashMap;
use std::net::SocketAddr;

use super::half::{Half, Out, Shared};
use super::limits::{Limits, ReassemblyCounters};
use super::{CloseReason, Direction, EventKind, FlowId, StreamSink};
use crate::wire::Segment;

/// How often, in capture time, idle flows are looked for.
const SWEEP_INTERVAL_NS: i64 = 1_000_000_000;
/// When the table is full, this fraction of it (the least recently seen) is evicted at once,
/// so a flood costs one scan per many new flows, not one per flow.
const EVICT_DIVISOR: usize = 16;
/// Ports below this are taken for servers when no handshake says who is who.
const WELL_KNOWN_PORTS: u16 = 1024;
/// Ports from here up are taken for clients (the Linux ephemeral range starts at 32768).
const EPHEMERAL_PORTS: u16 = 32_768;

/// A connection's 4-tuple with the smaller endpoint first, so both directions find it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Key(SocketAddr, SocketAddr);

impl Key {
    fn new(a: SocketAddr, b: SocketAddr) -> Key {
        if a <= b {
            Key(a, b)
        } else {
            Key(b, a)
        }
    }
}

struct Flow {
    id: FlowId,
    client: SocketAddr,
    halves: [Half; 2],
    last_seen: i64,
    /// Closed and emptied; kept a little while to absorb trailing segments.
    closed: bool,
}

impl Flow {
    fn new(id: FlowId, client: SocketAddr, ts: i64) -> Flow {
        Flow {
            id,
            client,
            halves: [
                Half::new(Direction::ClientToServer),
                Half::new(Direction::ServerToClient),
            ],
            last_seen: ts,
            closed: false,
        }
    }

    fn had_data(&self) -> bool {
        self.halves.iter().any(|h| h.had_data)
    }
}

/// TCP segments in, ordered per-direction byte streams out (see the module docs).
pub struct Reassembler {
    limits: Limits,
    counters: ReassemblyCounters,
    flows: HashMap<Key, Flow, ahash::RandomState>,
    next_id: u64,
    pub(super) mem: usize,
    last_sweep: Option<i64>,
}

impl Reassembler {
    pub fn new(limits: Limits) -> Reassembler {
        Reassembler {
            limits,
            counters: ReassemblyCounters::default(),
            flows: HashMap::default(),
            next_id: 0,
            mem: 0,
            last_sweep: None,
        }
    }

    pub fn counters(&self) -> &ReassemblyCounters {
        &self.counters
    }

    /// Feeds one segment; events go to `sink` in capture order.
    pub fn push<S: StreamSink>(&mut self, seg: &Segment<'_>, sink: &mut S) {
        self.counters.segments += 1;
        self.counters.payload_bytes += seg.payload.len() as u64;
        let ts = seg.ts.nanos();
        match self.last_sweep {
            None => self.last_sweep = Some(ts),
            Some(last) if ts.saturating_sub(last) >= SWEEP_INTERVAL_NS => {
                self.last_sweep = Some(ts);
                self.sweep(ts, sink);
            }
            Some(_) => {}
        }
        let key = Key::new(seg.src, seg.dst);
        let (syn, ack) = (seg.flags.syn(), seg.flags.ack());
        let has_data = seg.seq_len() > u32::from(syn) + u32::from(seg.flags.fin());
        // One table lookup for a segment of a known connection, the common case.
        if let Some(flow) = self.flows.get_mut(&key) {
            let new_isn = syn
                && !ack
                && seg.src == flow.client
                && flow.halves[0].base() != Some(seg.seq.add(1));
            if flow.closed {
                if !syn || ack {
                    flow.last_seen = ts;
                    if has_data {
                        self.counters.data_after_close += 1;
                    }
                    return;
                }
                self.flows.remove(&key);
                self.counters.tcp_reuse += 1;
            } else if new_isn && flow.had_data() {
                // T16: the 4-tuple is reused by a new connection.
                self.counters.tcp_reuse += 1;
                self.expire(key, seg.ts.nanos(), CloseReason::Reused, sink);
                self.flows.remove(&key);
            } else {
                if new_isn && flow.halves[0].base().is_some() {
                    // T17: a SYN retransmitted with another ISN before any data: take the
                    // latest.
                    self.counters.handshake_anomaly += 1;
                    flow.halves[0].start_at(seg.seq.add(1));
                }
                let mut sh = Shared {
                    limits: &self.limits,
                    counters: &mut self.counters,
                    mem: &mut self.mem,
                };
                flow_segment(flow, seg, &mut sh, sink);
                return;
            }
        }
        // No connection (or the old one just went): a new one.
        if !syn && !has_data {
            self.counters.no_flow += 1;
            return;
        }
        self.open(key, seg, sink);
        self.segment(key, seg, sink);
    }

    /// Flushes and closes every open flow (the input ended).
    pub fn finish<S: StreamSink>(&mut self, sink: &mut S) {
        let mut open: Vec<(FlowId, Key, i64)> = self
            .flows
            .iter()
            .filter(|(_, f)| !f.closed)
            .map(|(k, f)| (f.id, *k, f.last_seen))
            .collect();
        open.sort_unstable_by_key(|(id, _, _)| *id);
        for (_, key, last_seen) in open {
            self.expire(key, last_seen, CloseReason::CaptureEnded, sink);
        }
        self.flows.clear();
        self.counters.active = 0;
    }

    fn open<S: StreamSink>(&mut self, key: Key, seg: &Segment<'_>, sink: &mut S) {
        if self.flows.len() >= self.limits.max_flows {
            self.evict(seg.ts.nanos(), sink);
        }
        let (syn, ack) = (seg.flags.syn(), seg.flags.ack());
        let (client, server) = if syn && !ack {
            (seg.src, seg.dst)
        } else if syn || server_rank(seg.src.port()) < server_rank(seg.dst.port()) {
            // The SYN-ACK's sender is the server (T14); without a handshake, guess by port.
            (seg.dst, seg.src)
        } else {
            (seg.src, seg.dst)
        };
        let midstream = !syn;
        self.next_id += 1;
        let id = FlowId(self.next_id);
        self.counters.sessions += 1;
        self.counters.midstream_pickups += u64::from(midstream);
        self.flows
            .insert(key, Flow::new(id, client, seg.ts.nanos()));
        self.counters.active = self.flows.len() as u64;
        sink.event(super::StreamEvent {
            flow: id,
            ts: seg.ts,
            kind: EventKind::Open {
                client,
                server,
                midstream,
            },
        });
    }

    fn segment<S: StreamSink>(&mut self, key: Key, seg: &Segment<'_>, sink: &mut S) {
        let Some(flow) = self.flows.get_mut(&key) else {
            return;
        };
        let mut sh = Shared {
            limits: &self.limits,
            counters: &mut self.counters,
            mem: &mut self.mem,
        };
        flow_segment(flow, seg, &mut sh, sink);
    }

    /// Flushes a live flow and emits its Close (it stays in the table as closed).
    fn expire<S: StreamSink>(&mut self, key: Key, at: i64, reason: CloseReason, sink: &mut S) {
        let Some(flow) = self.flows.get_mut(&key) else {
            return;
        };
        if flow.closed {
            return;
        }
        let mut sh = Shared {
            limits: &self.limits,
            counters: &mut self.counters,
            mem: &mut self.mem,
        };
        let mut out = Out {
            sink,
            flow: flow.id,
            ts: crate::capture::Timestamp::from_nanos(at),
        };
        for half in &mut flow.halves {
            half.flush(&mut sh, &mut out);
            half.release(&mut sh);
        }
        out.emit(EventKind::Close { reason });
        flow.closed = true;
        sh.counters.closed += 1;
    }

    /// Closes flows idle past their timeout and forgets closed ones past theirs (T21, L04).
    fn sweep<S: StreamSink>(&mut self, now: i64, sink: &mut S) {
        let limits = &self.limits;
        let mut expired: Vec<(FlowId, Key, i64, bool)> = self
            .flows
            .iter()
            .filter_map(|(k, f)| {
                let timeout = if f.closed {
                    limits.timeout_closed_ns
                } else if f.had_data() {
                    limits.timeout_established_ns
                } else {
                    limits.timeout_new_ns
                };
                (now.saturating_sub(f.last_seen) > timeout).then_some((
                    f.id,
                    *k,
                    f.last_seen,
                    f.closed,
                ))
            })
            .collect();
        expired.sort_unstable_by_key(|e| e.0);
        for (_, key, last_seen, closed) in expired {
            if !closed {
                self.counters.timeouts += 1;
                self.expire(key, last_seen, CloseReason::Timeout, sink);
            }
            self.flows.remove(&key);
        }
        self.counters.active = self.flows.len() as u64;
        self.counters.memuse = self.mem as u64;
    }

    /// Makes room: closes the least recently seen sixteenth of the table (L03).
    fn evict<S: StreamSink>(&mut self, now: i64, sink: &mut S) {
        let mut by_age: Vec<(i64, FlowId, Key, bool)> = self
            .flows
            .iter()
            .map(|(k, f)| (f.last_seen, f.id, *k, f.closed))
            .collect();
        let n = (self.limits.max_flows / EVICT_DIVISOR)
            .max(1)
            .min(by_age.len());
        if n < by_age.len() {
            by_age.select_nth_unstable(n);
        }
        by_age.truncate(n);
        by_age.sort_unstable();
        for (_, _, key, closed) in by_age {
            if !closed {
                self.counters.evicted += 1;
                self.expire(key, now, CloseReason::Evicted, sink);
            }
            self.flows.remove(&key);
        }
    }
}

/// Lower means more likely the server's port, for flows picked up without a handshake.
fn server_rank(port: u16) -> (u8, u16) {
    let class = if port < WELL_KNOWN_PORTS {
        0
    } else if port < EPHEMERAL_PORTS {
        1
    } else {
        2
    };
    (class, port)
}

/// One segment of a connection in the table: its direction's stream, its ACK for the other,
/// FIN and RST.
fn flow_segment<S: StreamSink>(
    flow: &mut Flow,
    seg: &Segment<'_>,
    sh: &mut Shared<'_>,
    sink: &mut S,
) {
    flow.last_seen = seg.ts.nanos();
    let dir = if seg.src == flow.client {
        Direction::ClientToServer
    } else {
        Direction::ServerToClient
    };
    let mut out = Out {
        sink,
        flow: flow.id,
        ts: seg.ts,
    };
    let [c2s, s2c] = &mut flow.halves;
    let (this, peer) = match dir {
        Direction::ClientToServer => (c2s, s2c),
        Direction::ServerToClient => (s2c, c2s),
    };
    let flags = seg.flags;
    if flags.syn() {
        if this.base().is_none() || (!this.had_data && this.next == 0) {
            this.start_at(seg.seq.add(1));
        }
        if !seg.payload.is_empty() {
            sh.counters.syn_data += 1;
        }
    } else if this.base().is_none() {
        this.start_at(seg.seq);
    }
    let ack_off = if flags.ack() {
        peer.offset(seg.ack)
    } else {
        None
    };
    if flags.rst() {
        let in_window = this
            .offset(seg.seq)
            .is_none_or(|off| off.abs_diff(this.next as i64) <= sh.limits.window as u64 * 4);
        if !in_window {
            sh.counters.rst_invalid += 1;
            return;
        }
        sh.counters.rst += 1;
        let (first, second) = match dir {
            Direction::ClientToServer => (this, peer),
            Direction::ServerToClient => (peer, this),
        };
        first.reset(sh, &mut out);
        second.reset(sh, &mut out);
        out.emit(EventKind::Close {
            reason: CloseReason::Rst,
        });
        first.release(sh);
        second.release(sh);
        flow.closed = true;
        sh.counters.closed += 1;
        return;
    }
    let Some(off) = this.offset(seg.seq) else {
        return;
    };
    let off = off + i64::from(flags.syn());
    let data_ack = ack_off.and_then(|a| u64::try_from(a).ok());
    this.segment(
        off,
        (seg.payload, u64::from(seg.missing)),
        data_ack,
        sh,
        &mut out,
    );
    if flags.fin() {
        let fin = off + seg.payload.len() as i64 + i64::from(seg.missing);
        if let Ok(fin) = u64::try_from(fin) {
            let was_open = !this.ended;
            this.fin(fin, sh, &mut out);
            if was_open && this.ended && !peer.ended {
                sh.counters.half_closed += 1;
            }
        }
    }
    if let Some(a) = ack_off {
        peer.peer_ack(a, sh, &mut out);
    }
    if this.ended && peer.ended {
        out.emit(EventKind::Close {
            reason: CloseReason::Fin,
        });
        flow.closed = true;
        sh.counters.closed += 1;
    }
}
