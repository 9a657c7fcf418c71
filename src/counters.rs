//! The counter convention shared by every stage: each stage keeps a plain struct of `u64`
//! fields and lists them, with their dotted names (`tcp.ooo_segments`), through [`Counters`].

/// A stage's counters, listed by name for summaries, JSON and metrics.
pub trait Counters {
    /// Calls `f` once per counter with its dotted name and value, zero values included.
    fn visit(&self, f: &mut dyn FnMut(&str, u64));
}
