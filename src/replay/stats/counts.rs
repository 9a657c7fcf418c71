//! Counts keyed by enum, not by name: why requests were not replayed (`counts.filtered`,
//! `counts.incomplete`, `counts.dropped` in the report) and the shadow's transport errors
//! (`shadow.errors`). A table has one slot per reason, so a typo in a reason cannot make a
//! new key, and adding two tables is adding arrays.

use super::super::client::Failure;
use super::super::select::Skip;

/// Why a selected request was not sent (`counts.dropped`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dropped {
    /// `mirror`: the shard's queue was full.
    QueueFull,
    /// `mirror`: over `--rate`.
    RateLimit,
    /// Still queued when a signal or the drain deadline stopped the run.
    Shutdown,
}

impl Dropped {
    /// Every reason, each at its [`Dropped::index`].
    pub const ALL: [Dropped; 3] = [Dropped::QueueFull, Dropped::RateLimit, Dropped::Shutdown];

    pub fn index(self) -> usize {
        self as usize
    }

    /// The reason as the report writes it.
    pub fn name(self) -> &'static str {
        match self {
            Dropped::QueueFull => "queue_full",
            Dropped::RateLimit => "rate_limit",
            Dropped::Shutdown => "shutdown",
        }
    }

    pub fn from_name(name: &str) -> Option<Dropped> {
        Dropped::ALL.into_iter().find(|d| d.name() == name)
    }
}

/// Any reason a seen request was not replayed: not selected ([`Skip`]) or selected and not
/// sent ([`Dropped`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    Skip(Skip),
    Dropped(Dropped),
}

impl Reason {
    /// The accounting category (DESIGN.md): `incomplete`, `filtered` or `dropped`.
    pub fn category(self) -> &'static str {
        match self {
            Reason::Skip(s) => s.category(),
            Reason::Dropped(_) => "dropped",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Reason::Skip(s) => s.name(),
            Reason::Dropped(d) => d.name(),
        }
    }

    /// Looks a reason up by its category and name, as a saved report writes them.
    pub fn from_name(category: &str, name: &str) -> Option<Reason> {
        match category {
            "dropped" => Dropped::from_name(name).map(Reason::Dropped),
            _ => Skip::from_name(category, name).map(Reason::Skip),
        }
    }
}

/// Requests not replayed, by reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Skipped {
    skip: [u64; Skip::ALL.len()],
    dropped: [u64; Dropped::ALL.len()],
}

impl Skipped {
    pub fn add(&mut self, why: Reason, n: u64) {
        *self.slot(why) += n;
    }

    pub fn get(&self, why: Reason) -> u64 {
        match why {
            Reason::Skip(s) => self.skip[s.index()],
            Reason::Dropped(d) => self.dropped[d.index()],
        }
    }

    fn slot(&mut self, why: Reason) -> &mut u64 {
        match why {
            Reason::Skip(s) => &mut self.skip[s.index()],
            Reason::Dropped(d) => &mut self.dropped[d.index()],
        }
    }

    /// The reasons with a count, in a fixed order (incomplete and filtered as [`Skip::ALL`],
    /// then dropped).
    pub fn iter(&self) -> impl Iterator<Item = (Reason, u64)> + '_ {
        let skip = Skip::ALL.into_iter().map(Reason::Skip);
        let dropped = Dropped::ALL.into_iter().map(Reason::Dropped);
        skip.chain(dropped)
            .map(|r| (r, self.get(r)))
            .filter(|(_, n)| *n > 0)
    }

    /// Requests selected but not sent, whatever the reason.
    pub fn dropped_total(&self) -> u64 {
        self.dropped.iter().sum()
    }

    pub fn merge(&mut self, other: &Skipped) {
        for (a, b) in self.skip.iter_mut().zip(other.skip) {
            *a += b;
        }
        for (a, b) in self.dropped.iter_mut().zip(other.dropped) {
            *a += b;
        }
    }
}

/// The shadow's transport errors, by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Errors([u64; Failure::ALL.len()]);

impl Errors {
    pub fn add(&mut self, kind: Failure, n: u64) {
        self.0[kind.index()] += n;
    }

    pub fn get(&self, kind: Failure) -> u64 {
        self.0[kind.index()]
    }

    /// Every kind with its count (zero included), in [`Failure::ALL`] order.
    pub fn iter(&self) -> impl Iterator<Item = (Failure, u64)> + '_ {
        Failure::ALL.into_iter().map(|f| (f, self.get(f)))
    }

    /// The kinds the shadow is to blame for: all but [`Failure::is_ours`].
    pub fn blamed(&self) -> u64 {
        self.iter()
            .filter(|(f, _)| !f.is_ours())
            .map(|(_, n)| n)
            .sum()
    }

    pub fn merge(&mut self, other: &Errors) {
        for (a, b) in self.0.iter_mut().zip(other.0) {
            *a += b;
        }
    }
}
