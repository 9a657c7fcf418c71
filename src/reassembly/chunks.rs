//! The out-of-order bytes one direction holds above holes: disjoint chunks by stream offset,
//! the bytes charged for them, and the holes between them, kept as chunks come and go so
//! counting them is not a walk over every chunk (T20). Every chunk looked at is counted
//! ([`chunks_visited`]).

use std::collections::btree_map::{self, BTreeMap};
use std::ops::RangeBounds;

/// Bytes charged per buffered chunk on top of its data, so a flood of 1-byte segments cannot
/// hold more memory than the caps say.
const CHUNK_OVERHEAD: usize = 64;

thread_local! {
    /// Chunks looked at (found, walked or removed) on this thread since it started: what the
    /// cost tests and the fuzzing pipeline compare with the segments fed, so that a return of
    /// a walk over every held chunk per insert (T20) fails a check instead of only slowing
    /// down. Const-initialised and without a destructor, so an access is a plain increment of
    /// a thread-local word: no lazy set-up, no lock, no atomic.
    pub(super) static VISITS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Counts `n` chunks looked at.
#[inline]
pub(super) fn visit(n: u64) {
    VISITS.with(|v| v.set(v.get().wrapping_add(n)));
}

/// Chunks looked at on this thread so far (never reset: take the difference around the work
/// to measure).
pub fn chunks_visited() -> u64 {
    VISITS.with(std::cell::Cell::get)
}

/// Out-of-order bytes: captured data followed by `missing` uncaptured bytes (snap length).
pub(super) struct Chunk {
    pub data: Vec<u8>,
    pub missing: u64,
    pub ack: Option<u64>,
}

impl Chunk {
    pub fn len(&self) -> u64 {
        self.data.len() as u64 + self.missing
    }

    /// Bytes charged for the chunk: its data and [`CHUNK_OVERHEAD`].
    pub fn cost(&self) -> usize {
        self.data.len() + CHUNK_OVERHEAD
    }
}

/// The chunks of one direction.
#[derive(Default)]
pub(super) struct Chunks {
    /// Disjoint: every byte held is in at most one chunk.
    map: BTreeMap<u64, Chunk>,
    /// Chunks, the first apart, that do not start where the chunk before them ends: with the
    /// hole in front of the first chunk, the holes.
    splits: usize,
    /// Bytes charged for `map`.
    held: usize,
}

impl Chunks {
    /// Bytes charged for the chunks held.
    pub fn held(&self) -> usize {
        self.held
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Where the first chunk starts.
    pub fn first(&self) -> Option<u64> {
        self.map.first_key_value().map(|(&k, _)| k)
    }

    /// The chunks starting in `range`, by offset.
    pub fn range(&self, range: impl RangeBounds<u64>) -> btree_map::Range<'_, u64, Chunk> {
        self.map.range(range)
    }

    pub fn values(&self) -> btree_map::Values<'_, u64, Chunk> {
        self.map.values()
    }

    /// Drops every chunk; what was charged for them is the caller's to give back first.
    pub fn clear(&mut self) {
        self.held = 0;
        self.map.clear();
        self.splits = 0;
    }

    /// Removes the first chunk, keeping `splits` and the memory charged (`mem`) right.
    pub fn pop_first(&mut self, mem: &mut usize) -> Option<(u64, Chunk)> {
        let (off, chunk) = self.map.pop_first()?;
        visit(1);
        if let Some((&second, _)) = self.map.first_key_value() {
            visit(1);
            // The second chunk becomes the first: it is no longer counted in `splits`.
            self.splits -= usize::from(second > off + chunk.len());
        }
        self.held -= chunk.cost();
        *mem -= chunk.cost();
        Some((off, chunk))
    }

    /// Adds a chunk over bytes no chunk holds yet, keeping `splits` right: it looks at the
    /// chunks on either side only.
    pub fn insert(&mut self, off: u64, chunk: Chunk, mem: &mut usize) {
        let end = off + chunk.len();
        let before = self.map.range(..off).next_back().map(|(&s, c)| s + c.len());
        let after = self.map.range(off..).next().map(|(&s, _)| s);
        visit(2);
        if let Some(prev_end) = before {
            self.splits += usize::from(off > prev_end);
            if let Some(next_start) = after {
                self.splits -= usize::from(next_start > prev_end);
            }
        }
        if let Some(next_start) = after {
            self.splits += usize::from(next_start > end);
        }
        *mem += chunk.cost();
        self.held += chunk.cost();
        self.map.insert(off, chunk);
    }

    /// Holes below held bytes, all delivered below `next`: the one in front of the first
    /// chunk, and the splits.
    pub fn holes(&self, next: u64) -> usize {
        visit(1);
        let first = match self.map.first_key_value() {
            Some((&s, _)) => usize::from(s > next),
            None => 0,
        };
        #[cfg(test)]
        if self.map.len() <= 64 {
            debug_assert_eq!(self.splits + first, self.holes_by_walk(next));
        }
        self.splits + first
    }

    /// The holes counted by walking every chunk: what `splits` must agree with.
    #[cfg(test)]
    fn holes_by_walk(&self, next: u64) -> usize {
        let mut holes = 0;
        let mut pos = next;
        for (&s, c) in &self.map {
            if s > pos {
                holes += 1;
            }
            pos = pos.max(s + c.len());
        }
        holes
    }
}
