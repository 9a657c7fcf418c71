//! IPv4 and IPv6 fragment reassembly, bounded in memory, fragment count and capture time.
//!
//! Overlapping fragments: the first copy of a byte wins (RFC 5722 says drop the datagram;
//! analyzers keep first or last by target OS, Suricata's default is BSD, "first"). A later
//! copy that disagrees is counted as `defrag.overlap_conflict` (I03).

use std::collections::HashMap;
use std::net::IpAddr;

use super::limits::{DecoderCounters, Limits};

/// Largest upper-layer payload a fragmented datagram can carry (16-bit total length).
const MAX_DATAGRAM: u32 = 65_535;
/// How often, in capture time, the table is swept for expired datagrams.
const SWEEP_INTERVAL_NS: i64 = 1_000_000_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) struct Key {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub id: u32,
    pub proto: u8,
}

struct Pending {
    data: Vec<u8>,
    /// Byte ranges received, sorted and merged.
    covered: Vec<(u32, u32)>,
    /// Length of the whole payload, known once the last fragment (no more-fragments) arrives.
    total: Option<u32>,
    first_ts: i64,
    fragments: usize,
}

impl Pending {
    fn complete(&self) -> bool {
        matches!((self.total, self.covered.as_slice()), (Some(t), [(0, end)]) if *end == t)
    }

    /// Copies the parts of `[start, end)` not yet covered; returns whether an already covered
    /// part differed.
    fn insert(&mut self, start: u32, payload: &[u8]) -> bool {
        let end = start + payload.len() as u32;
        if self.data.len() < end as usize {
            self.data.resize(end as usize, 0);
        }
        let mut conflict = false;
        let mut pos = start;
        for &(s, e) in &self.covered {
            if e <= pos || s >= end {
                continue;
            }
            if s > pos {
                let (a, b) = (pos as usize, s as usize);
                self.data[a..b].copy_from_slice(&payload[a - start as usize..b - start as usize]);
            }
            let (a, b) = (pos.max(s) as usize, e.min(end) as usize);
            conflict |= self.data[a..b] != payload[a - start as usize..b - start as usize];
            pos = pos.max(e);
        }
        if pos < end {
            let (a, b) = (pos as usize, end as usize);
            self.data[a..b].copy_from_slice(&payload[a - start as usize..]);
        }
        self.covered.push((start, end));
        self.covered.sort_unstable();
        let mut merged: Vec<(u32, u32)> = Vec::with_capacity(self.covered.len());
        for &(s, e) in &self.covered {
            match merged.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        self.covered = merged;
        conflict
    }
}

/// Incomplete datagrams and the buffer the last completed one is assembled in.
#[derive(Default)]
pub(super) struct Defrag {
    table: HashMap<Key, Pending>,
    bytes: usize,
    fragments: usize,
    last_sweep: i64,
    /// The upper-layer payload of the datagram completed by the last call to [`Defrag::add`].
    pub out: Vec<u8>,
}

impl Defrag {
    /// Adds one fragment (`offset` in bytes into the upper-layer payload). Returns true when it
    /// completed its datagram, whose payload is then in `self.out`.
    pub fn add(
        &mut self,
        key: Key,
        ts: i64,
        (offset, more, payload): (u32, bool, &[u8]),
        limits: &Limits,
        counters: &mut DecoderCounters,
    ) -> bool {
        counters.fragments += 1;
        self.sweep(ts, limits, counters);
        let end = offset + payload.len() as u32;
        if end > MAX_DATAGRAM || (more && payload.len() % 8 != 0) {
            counters.invalid_fragment += 1;
            return false;
        }
        if !self.table.contains_key(&key)
            && (self.bytes + end as usize > limits.defrag_memcap
                || self.fragments >= limits.defrag_max_fragments)
        {
            counters.memcap_drop += 1;
            return false;
        }
        let entry = self.table.entry(key).or_insert_with(|| Pending {
            data: Vec::new(),
            covered: Vec::new(),
            total: None,
            first_ts: ts,
            fragments: 0,
        });
        if !more {
            match entry.total {
                Some(t) if t != end => {
                    counters.invalid_fragment += 1;
                    return false;
                }
                _ => entry.total = Some(end),
            }
        }
        if entry.total.is_some_and(|t| end > t) {
            counters.invalid_fragment += 1;
            return false;
        }
        let before = entry.data.len();
        if self.bytes + (end as usize).saturating_sub(before) > limits.defrag_memcap {
            // Growing this datagram would pass the cap: give it up whole.
            if let Some(dropped) = self.table.remove(&key) {
                self.bytes -= dropped.data.len();
                self.fragments -= dropped.fragments;
            }
            counters.memcap_drop += 1;
            return false;
        }
        if entry.insert(offset, payload) {
            counters.overlap_conflict += 1;
        }
        entry.fragments += 1;
        self.bytes += entry.data.len() - before;
        self.fragments += 1;
        if !entry.complete() {
            return false;
        }
        if let Some(done) = self.table.remove(&key) {
            self.bytes -= done.data.len();
            self.fragments -= done.fragments;
            self.out = done.data;
            counters.reassembled += 1;
            return true;
        }
        false
    }

    fn sweep(&mut self, ts: i64, limits: &Limits, counters: &mut DecoderCounters) {
        if ts.saturating_sub(self.last_sweep) < SWEEP_INTERVAL_NS || self.table.is_empty() {
            return;
        }
        self.last_sweep = ts;
        let (mut bytes, mut frags, mut expired) = (0, 0, 0);
        self.table.retain(|_, p| {
            let keep = ts.saturating_sub(p.first_ts) <= limits.defrag_timeout_ns;
            if !keep {
                bytes += p.data.len();
                frags += p.fragments;
                expired += 1;
            }
            keep
        });
        self.bytes -= bytes;
        self.fragments -= frags;
        counters.timeouts += expired;
    }

    #[cfg(test)]
    pub fn held_bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn key() -> Key {
        Key {
            src: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
            dst: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
            id: 7,
            proto: 6,
        }
    }

    #[test]
    fn i01_fragments_out_of_order_are_reassembled() {
        let (mut d, l, mut c) = (
            Defrag::default(),
            Limits::default(),
            DecoderCounters::default(),
        );
        let data: Vec<u8> = (0..40u8).collect();
        assert!(!d.add(key(), 0, (16, true, &data[16..32]), &l, &mut c));
        assert!(!d.add(key(), 0, (32, false, &data[32..]), &l, &mut c));
        assert!(d.add(key(), 0, (0, true, &data[..16]), &l, &mut c));
        assert_eq!(d.out, data);
        assert_eq!(c.reassembled, 1);
        assert_eq!(d.held_bytes(), 0);
    }

    #[test]
    fn i03_overlap_first_copy_wins_and_conflict_is_counted() {
        let (mut d, l, mut c) = (
            Defrag::default(),
            Limits::default(),
            DecoderCounters::default(),
        );
        assert!(!d.add(key(), 0, (0, true, &[1; 16]), &l, &mut c));
        assert!(d.add(key(), 0, (8, false, &[2; 16]), &l, &mut c));
        assert_eq!(&d.out[..16], &[1; 16]);
        assert_eq!(&d.out[16..], &[2; 8]);
        assert_eq!(c.overlap_conflict, 1);
    }

    #[test]
    fn i04_incomplete_datagram_times_out() {
        let (mut d, l, mut c) = (
            Defrag::default(),
            Limits::default(),
            DecoderCounters::default(),
        );
        assert!(!d.add(key(), 0, (0, true, &[1; 16]), &l, &mut c));
        let later = l.defrag_timeout_ns + 2_000_000_000;
        let other = Key { id: 8, ..key() };
        assert!(!d.add(other, later, (0, true, &[1; 8]), &l, &mut c));
        assert_eq!(c.timeouts, 1);
        assert_eq!(d.held_bytes(), 8);
    }

    #[test]
    fn l04_memcap_drops_new_datagrams() {
        let l = Limits {
            defrag_memcap: 32,
            ..Limits::default()
        };
        let (mut d, mut c) = (Defrag::default(), DecoderCounters::default());
        assert!(!d.add(key(), 0, (0, true, &[1; 24]), &l, &mut c));
        assert!(!d.add(Key { id: 9, ..key() }, 0, (0, true, &[1; 16]), &l, &mut c));
        assert_eq!(c.memcap_drop, 1);
        assert_eq!(d.held_bytes(), 24);
    }

    #[test]
    fn oversized_or_misaligned_fragments_are_invalid() {
        let (mut d, l, mut c) = (
            Defrag::default(),
            Limits::default(),
            DecoderCounters::default(),
        );
        assert!(!d.add(key(), 0, (65_530, false, &[0; 16]), &l, &mut c));
        assert!(!d.add(key(), 0, (0, true, &[0; 12]), &l, &mut c));
        assert_eq!(c.invalid_fragment, 2);
    }
}
