//! One byte budget for everything the HTTP tracker holds across connections (Suricata's
//! `http.memcap` and `http.memuse`): partial heads, the buffers scanned for a message start
//! after a gap, the queues of requests waiting for their responses and their parsed heads,
//! and the request bodies kept for replay. Per-connection limits alone do not bound the whole: 16,000
//! slow-header clients each with a 63 KiB unfinished head hold a gigabyte, and the flow
//! table allows 65,536 of them.
//!
//! Every growth of a held buffer asks the budget first and is refused, with nothing changed,
//! when the budget cannot cover it; the caller then gives that piece of state up (a head
//! becomes a gap, a body is counted but not kept, a full queue sends its oldest request on
//! unanswered) and counts it (`http.memcap_hits`). The
//! budget is charged with capacities, not lengths, so what it says is what is allocated.

use super::Request;

/// The tracker's byte budget: what is charged now, its high-water mark and the cap.
#[derive(Debug)]
pub(super) struct Budget {
    cap: usize,
    used: usize,
    peak: usize,
}

impl Budget {
    pub(super) fn new(cap: usize) -> Budget {
        Budget {
            cap,
            used: 0,
            peak: 0,
        }
    }

    pub(super) fn used(&self) -> usize {
        self.used
    }

    pub(super) fn peak(&self) -> usize {
        self.peak
    }

    /// Takes `n` bytes from the budget if they fit under the cap.
    pub(super) fn charge(&mut self, n: usize) -> bool {
        match self.used.checked_add(n) {
            Some(total) if total <= self.cap => {
                self.used = total;
                self.peak = self.peak.max(total);
                true
            }
            _ => false,
        }
    }

    /// Gives back `n` bytes charged before.
    pub(super) fn release(&mut self, n: usize) {
        debug_assert!(n <= self.used, "released {n} of {} charged", self.used);
        self.used = self.used.saturating_sub(n);
    }

    /// Appends `bytes` to `v`, growing it (doubling, up to `limit` unless more is needed) only
    /// with the budget's consent. False, with `v` unchanged, when the budget cannot cover it.
    pub(super) fn extend(&mut self, v: &mut Vec<u8>, bytes: &[u8], limit: usize) -> bool {
        let need = v.len() + bytes.len();
        let cap = v.capacity();
        if need > cap {
            let doubled = cap.saturating_mul(2).min(limit).max(need);
            let target = if self.charge(doubled - cap) {
                doubled
            } else if doubled > need && self.charge(need - cap) {
                need
            } else {
                return false;
            };
            v.reserve_exact(target - v.len());
            self.surplus(v.capacity() - target);
        }
        v.extend_from_slice(bytes);
        true
    }

    /// Bytes held beyond what was asked for (a collection may round its capacity up):
    /// charged whatever the cap, so the figure stays what is really held.
    pub(super) fn surplus(&mut self, n: usize) {
        self.used += n;
        self.peak = self.peak.max(self.used);
    }

    /// Frees `v` and gives its bytes back.
    pub(super) fn free(&mut self, v: &mut Vec<u8>) {
        self.release(v.capacity());
        *v = Vec::new();
    }

    /// Takes `v` out of the budget: its bytes now belong to the caller.
    pub(super) fn take(&mut self, v: &mut Vec<u8>) -> Vec<u8> {
        self.release(v.capacity());
        std::mem::take(v)
    }
}

/// Slots a connection's queue of waiting requests keeps when it empties; a larger queue (a
/// burst of pipelined requests) is freed then.
pub(super) const QUEUE_KEPT: usize = 4;

/// Heap bytes of a request's parsed head (method, target, headers): what a request waiting
/// for its response holds besides its body.
pub(super) fn head_bytes(r: &Request) -> usize {
    r.method.capacity() + r.target.capacity() + r.headers.heap_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growth_is_charged_by_capacity_and_refused_past_the_cap() {
        let mut b = Budget::new(100);
        let mut v = Vec::new();
        assert!(b.extend(&mut v, &[1; 30], 64));
        assert_eq!(b.used(), v.capacity());
        assert!(b.extend(&mut v, &[2; 30], 64));
        assert_eq!(b.used(), v.capacity());
        // 60 held, 64 allowed by doubling; 50 more need 110: refused, nothing changed.
        assert!(!b.extend(&mut v, &[3; 50], 64));
        assert_eq!(v.len(), 60);
        assert_eq!(b.used(), v.capacity());
        // Exactly what is needed when doubling would not fit.
        let mut w = Vec::new();
        assert!(b.extend(&mut w, &[4; 30], 64));
        assert!(b.used() <= 100, "{}", b.used());
        assert_eq!(b.used(), v.capacity() + w.capacity());
        b.free(&mut v);
        let taken = b.take(&mut w);
        assert_eq!(taken.len(), 30);
        assert_eq!(b.used(), 0);
        assert!(b.peak() <= 100 && b.peak() >= 90, "{}", b.peak());
    }
}
