//! Retransmissions that disagreed with what was delivered (the reassembler's
//! `EventKind::Conflict`, RELIABILITY.md T04): which copy the server took is unknown, so the
//! exchange those bytes belong to is flagged `overlap_conflict` and never replayed.
//!
//! The tracker knows where each message starts and ends in its direction's stream. Conflicts
//! are kept per direction as byte ranges until every message they could belong to has been
//! emitted; a message is checked against them when it is emitted. A conflict on bytes of a
//! message already emitted can no longer flag it and is counted instead
//! (`http.conflict_after_emit`).

/// Ranges kept per direction; past it the two nearest are merged (a range may then flag a
/// message between them too: safe, since flagged exchanges are only not replayed).
const MAX_RANGES: usize = 8;

/// One direction's conflicting ranges still ahead of what was emitted.
#[derive(Debug, Default)]
pub(super) struct Taint {
    ranges: Vec<(u64, u64)>,
    /// End offset of the last message of this direction that was emitted.
    emitted_end: u64,
}

impl Taint {
    /// Records the conflicting bytes `[offset, offset + len)`; true when some of them belong
    /// to what was already emitted.
    pub(super) fn add(&mut self, offset: u64, len: u64) -> bool {
        let end = offset.saturating_add(len.max(1));
        let after_emit = offset < self.emitted_end;
        if end > self.emitted_end {
            self.ranges.push((offset.max(self.emitted_end), end));
            if self.ranges.len() > MAX_RANGES {
                self.merge_nearest();
            }
        }
        after_emit
    }

    fn merge_nearest(&mut self) {
        self.ranges.sort_unstable();
        let nearest = self
            .ranges
            .windows(2)
            .enumerate()
            .min_by_key(|(_, w)| w[1].0.saturating_sub(w[0].1))
            .map(|(i, _)| i);
        if let Some(i) = nearest {
            let (_, end) = self.ranges.remove(i + 1);
            self.ranges[i].1 = self.ranges[i].1.max(end);
        }
    }

    /// Whether a message at `[start, end)` holds conflicting bytes.
    pub(super) fn covers(&self, start: u64, end: u64) -> bool {
        self.ranges.iter().any(|&(a, b)| a < end && start < b)
    }

    /// A message ending at `end` was emitted: ranges wholly before it can flag nothing more.
    pub(super) fn emitted(&mut self, end: u64) {
        self.emitted_end = self.emitted_end.max(end);
        let done = self.emitted_end;
        self.ranges.retain(|&(_, b)| b > done);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_flag_what_they_overlap_until_emitted_past() {
        let mut t = Taint::default();
        assert!(!t.add(10, 5));
        assert!(t.covers(0, 11));
        assert!(!t.covers(15, 30));
        t.emitted(20);
        assert!(!t.covers(0, 100));
        assert!(t.add(18, 4), "18 is before the emitted end");
        assert!(t.covers(20, 30), "the part after it is kept");
        for i in 0..20 {
            t.add(100 + i * 10, 1);
        }
        assert!(t.ranges.len() <= MAX_RANGES);
        assert!(t.covers(290, 291));
    }
}
