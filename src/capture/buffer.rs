//! The reusable read buffer under every capture reader: one large `read` per refill, records
//! handed out as slices of it, compacted when the unread tail reaches its end.
//!
//! Owns: the buffer, its bounded growth (F07) and telling EOF from a short read (F08).
//! Does not own: what the bytes mean (that is `pcap` and `pcapng`).

use std::io::{self, Read};

/// A bounded, refillable window over a byte stream.
///
/// Holds at most `max_size` bytes; [`ReadBuffer::ensure`] refuses to hold more.
pub(crate) struct ReadBuffer<R> {
    inner: R,
    buf: Vec<u8>,
    /// Start of the unread bytes in `buf`.
    start: usize,
    /// End of the valid bytes in `buf`.
    end: usize,
    /// Offset in the stream of `buf[0]`.
    base: u64,
    eof: bool,
    max_size: usize,
    /// Times the buffer grew (F07, `pcap.buffer_grow`).
    pub(crate) grows: u64,
    /// Reads that returned less than still needed (F08, `pcap.partial_reads`).
    pub(crate) partial_reads: u64,
}

impl<R: Read> ReadBuffer<R> {
    /// `initial` bytes now; grows up to `max_size` (at least `initial`).
    pub(crate) fn new(inner: R, initial: usize, max_size: usize) -> Self {
        let initial = initial.max(64);
        ReadBuffer {
            inner,
            buf: vec![0; initial],
            start: 0,
            end: 0,
            base: 0,
            eof: false,
            max_size: max_size.max(initial),
            grows: 0,
            partial_reads: 0,
        }
    }

    /// The unread bytes in the buffer.
    #[inline]
    pub(crate) fn available(&self) -> &[u8] {
        self.buf.get(self.start..self.end).unwrap_or(&[])
    }

    /// Index in the buffer of the first unread byte; valid until the next `ensure`.
    #[inline]
    pub(crate) fn start(&self) -> usize {
        self.start
    }

    /// Bytes `range` of the buffer (indices from [`ReadBuffer::start`]).
    #[inline]
    pub(crate) fn slice(&self, from: usize, len: usize) -> Option<&[u8]> {
        self.buf.get(from..from.checked_add(len)?)
    }

    /// Stream offset of the first unread byte.
    #[inline]
    pub(crate) fn offset(&self) -> u64 {
        self.base + self.start as u64
    }

    /// Marks `n` unread bytes as read (`n` at most `available().len()`).
    #[inline]
    pub(crate) fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.end);
    }

    /// Makes at least `n` unread bytes available. `Ok(false)` when the stream ends first
    /// (what is there stays available). `n` over the size cap is an `InvalidData` error; the
    /// parsers check lengths against their limits before asking, so that never happens.
    #[inline]
    pub(crate) fn ensure(&mut self, n: usize) -> io::Result<bool> {
        if self.end - self.start >= n {
            return Ok(true);
        }
        self.refill(n)
    }

    #[cold]
    fn refill(&mut self, n: usize) -> io::Result<bool> {
        if n > self.max_size {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("record of {n} bytes exceeds the buffer cap"),
            ));
        }
        if self.start + n > self.buf.len() {
            self.buf.copy_within(self.start..self.end, 0);
            self.base += self.start as u64;
            self.end -= self.start;
            self.start = 0;
        }
        if n > self.buf.len() {
            let size = n.max(self.buf.len().saturating_mul(2)).min(self.max_size);
            self.buf.resize(size, 0);
            self.grows += 1;
        }
        let mut first = true;
        while self.end - self.start < n {
            if self.eof {
                return Ok(false);
            }
            if !first {
                self.partial_reads += 1;
            }
            first = false;
            let Some(spare) = self.buf.get_mut(self.end..) else {
                return Ok(false);
            };
            match self.inner.read(spare) {
                Ok(0) => self.eof = true,
                Ok(got) => self.end += got,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    /// Frees the buffer memory once the stream is finished.
    pub(crate) fn release(&mut self) {
        self.base += self.start as u64;
        self.buf = Vec::new();
        self.start = 0;
        self.end = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hands out one byte per `read`, like a slow pipe (F08).
    struct Trickle<'a>(&'a [u8]);

    impl Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            match (self.0.split_first(), out.first_mut()) {
                (Some((b, rest)), Some(o)) => {
                    *o = *b;
                    self.0 = rest;
                    Ok(1)
                }
                _ => Ok(0),
            }
        }
    }

    #[test]
    fn f08_short_reads_are_not_eof() {
        let data: Vec<u8> = (0..200u8).collect();
        let mut b = ReadBuffer::new(Trickle(&data), 64, 1024);
        assert!(b.ensure(10).ok() == Some(true));
        assert_eq!(b.available().len(), 10);
        assert!(b.partial_reads > 0);
        b.consume(10);
        assert_eq!(b.offset(), 10);
        assert!(b.ensure(150).ok() == Some(true));
        assert_eq!(b.grows, 1);
        assert_eq!(b.available().first(), Some(&10));
        b.consume(150);
        assert!(b.ensure(41).ok() == Some(false));
        assert_eq!(b.available().len(), 40);
        b.consume(40);
        assert_eq!(b.offset(), 200);
    }

    #[test]
    fn f07_growth_stops_at_the_cap() {
        let data = vec![7u8; 4096];
        let mut b = ReadBuffer::new(&data[..], 64, 1000);
        assert!(b.ensure(1001).is_err());
        assert!(b.ensure(1000).ok() == Some(true));
    }
}
