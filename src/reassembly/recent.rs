//! The bytes one direction delivered last, kept so a retransmission of them can be compared
//! with what was delivered (RELIABILITY.md T04).

/// The smallest buffer allocated: most request heads fit.
const MIN_ALLOCATION: usize = 1024;

/// A ring of the last bytes delivered. It grows as bytes are delivered, up to the size the
/// caller allows, then wraps; a gap restarts it, since the bytes before a gap were not all seen.
#[derive(Default)]
pub(super) struct Recent {
    buf: Vec<u8>,
    /// Offset of the first byte recorded since the last restart: offset `o` is at
    /// `buf[(o - from) % buf.len()]`.
    from: u64,
    /// One past the last byte recorded.
    end: u64,
    /// Done growing: `buf.len()` is the ring's size.
    wrapped: bool,
}

impl Recent {
    /// Bytes allocated (what is charged to the reassembler's memory).
    pub fn charged(&self) -> usize {
        self.buf.capacity()
    }

    /// Still growing: recording may allocate.
    pub fn growing(&self) -> bool {
        !self.wrapped
    }

    /// Offsets whose bytes are kept: `[lo, end)`.
    pub fn span(&self) -> (u64, u64) {
        let kept = (self.end - self.from).min(self.buf.len() as u64);
        (self.end - kept, self.end)
    }

    /// Records `bytes`, delivered at `off`. The buffer may grow to `limit` bytes in all; when
    /// it cannot grow it wraps at the size it has. Returns the bytes newly allocated.
    pub fn record(&mut self, off: u64, bytes: &[u8], limit: usize) -> usize {
        if off != self.end {
            self.restart(off);
        }
        let before = self.charged();
        let mut rest = bytes;
        if !self.wrapped {
            let room = limit.saturating_sub(self.buf.len());
            let take = room.min(rest.len());
            if take > self.buf.capacity() - self.buf.len() {
                // Doubling, so a direction of small segments does not reallocate on each.
                let want = (self.buf.len() + take)
                    .max(self.buf.capacity() * 2)
                    .max(MIN_ALLOCATION)
                    .min(limit);
                self.buf.reserve_exact(want - self.buf.len());
            }
            self.buf.extend_from_slice(&rest[..take]);
            self.end += take as u64;
            rest = &rest[take..];
            if self.buf.len() >= limit || !rest.is_empty() {
                self.wrapped = true;
            }
        }
        self.write_ring(rest);
        self.charged() - before
    }

    /// Writes bytes at `end` over the oldest ones.
    fn write_ring(&mut self, bytes: &[u8]) {
        let n = self.buf.len();
        if n == 0 || bytes.is_empty() {
            self.end += bytes.len() as u64;
            return;
        }
        // Only the last `n` bytes survive.
        let skip = bytes.len().saturating_sub(n);
        let mut o = self.end + skip as u64;
        let mut src = &bytes[skip..];
        while !src.is_empty() {
            let i = ((o - self.from) % n as u64) as usize;
            let run = (n - i).min(src.len());
            self.buf[i..i + run].copy_from_slice(&src[..run]);
            src = &src[run..];
            o += run as u64;
        }
        self.end += bytes.len() as u64;
    }

    /// Forgets what was kept: the next bytes recorded start at `off`.
    fn restart(&mut self, off: u64) {
        if !self.wrapped {
            self.buf.clear();
        }
        self.from = off;
        self.end = off;
    }

    /// Where `bytes`, seen at `off`, differ from the bytes kept: `[first, last + 1)` of the
    /// differing offsets, or None when they agree (or nothing kept overlaps them).
    pub fn diff(&self, off: u64, bytes: &[u8]) -> Option<(u64, u64)> {
        let (lo, hi) = self.span();
        let a = off.max(lo);
        let b = (off + bytes.len() as u64).min(hi);
        let n = self.buf.len() as u64;
        let mut found: Option<(u64, u64)> = None;
        let mut o = a;
        while o < b {
            let i = ((o - self.from) % n) as usize;
            let run = ((n - i as u64).min(b - o)) as usize;
            let old = &self.buf[i..i + run];
            let new = &bytes[(o - off) as usize..][..run];
            if let Some((first, last)) = differing(old, new) {
                let range = (o + first as u64, o + last as u64 + 1);
                found = Some(found.map_or(range, |f| (f.0, range.1)));
            }
            o += run as u64;
        }
        found
    }

    /// Frees the buffer (the direction ended).
    pub fn release(&mut self) {
        *self = Recent::default();
    }
}

/// The first and last index where two equally long slices differ.
pub(super) fn differing(a: &[u8], b: &[u8]) -> Option<(usize, usize)> {
    if a == b {
        return None;
    }
    let first = a.iter().zip(b).position(|(x, y)| x != y)?;
    let last = a.iter().zip(b).rposition(|(x, y)| x != y)?;
    Some((first, last))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_bytes_across_wraps() {
        let mut r = Recent::default();
        let mut grown = r.record(0, b"0123456789", 8);
        grown += r.record(10, b"abcde", 8);
        assert_eq!(grown, r.charged());
        assert!(r.charged() >= 8 && !r.growing());
        assert_eq!(r.span(), (7, 15));
        assert_eq!(r.diff(7, b"789abcde"), None);
        assert_eq!(r.diff(5, b"xx7X9abZ"), Some((8, 13)));
        assert_eq!(
            r.diff(0, b"0123456"),
            None,
            "older than the ring: nothing to compare"
        );
    }

    #[test]
    fn small_writes_grow_it_to_the_limit_and_no_further() {
        let mut r = Recent::default();
        let mut charged = 0;
        for i in 0..100u64 {
            charged += r.record(i * 50, &[i as u8; 50], 3000);
            assert!(r.charged() <= 3000);
        }
        assert_eq!(charged, r.charged());
        assert_eq!(r.span(), (2000, 5000));
        assert_eq!(r.diff(4950, &[99; 50]), None);
        assert_eq!(r.diff(2000, &[40; 50]), None);
    }

    #[test]
    fn a_gap_restarts_what_is_kept() {
        let mut r = Recent::default();
        r.record(0, b"abcd", 16);
        r.record(10, b"xy", 16);
        assert_eq!(r.span(), (10, 12));
        assert_eq!(r.diff(0, b"ZZZZ"), None);
        assert_eq!(r.diff(10, b"xY"), Some((11, 12)));
    }

    #[test]
    fn a_write_longer_than_the_ring_keeps_its_tail() {
        let mut r = Recent::default();
        r.record(0, b"ab", 4);
        r.record(2, b"cdefghij", 4);
        assert_eq!(r.span(), (6, 10));
        assert_eq!(r.diff(6, b"ghij"), None);
        assert_eq!(r.diff(6, b"gHiJ"), Some((7, 10)));
    }
}
