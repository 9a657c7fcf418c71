//! The route table and its cap.

use std::collections::BTreeMap;

use super::{Route, MAX_ROUTES, OTHER};

/// The route table: the [`MAX_ROUTES`] routes whose names sort first (byte order) among all
/// the routes seen, each with its own figures, and [`OTHER`], which holds every other route's
/// requests with exact counts and merged histograms.
///
/// Kept by name, not by arrival or by traffic, because the kept set must be decided the same
/// way whatever the order requests finish in, the grouping of shards, or the order reports
/// are merged in, and the same way on one node as on the combined data. A route among the
/// first `MAX_ROUTES` names of the combined data is among the first of every part holding
/// it, so no part ever folds it into `other`: capping each node and then merging gives
/// exactly the table of the combined run, in any order and grouping. Keeping the busiest
/// routes cannot do that in bounded memory: a route just under the cut on every node can be
/// over it once the nodes are added up, but its requests already went to `other` on each.
#[derive(Clone, Default)]
pub struct Routes {
    named: BTreeMap<String, Route>,
    other: Option<Route>,
}

impl Routes {
    /// Entries in the table, `other` included (at most `MAX_ROUTES + 1`).
    pub fn len(&self) -> usize {
        self.named.len() + usize::from(self.other.is_some())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The kept routes in name order, then `other` if any route went there.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Route)> {
        self.named
            .iter()
            .map(|(name, r)| (name.as_str(), r))
            .chain(self.other.iter().map(|r| (OTHER, r)))
    }

    pub fn get(&self, name: &str) -> Option<&Route> {
        if name == OTHER {
            self.other.as_ref()
        } else {
            self.named.get(name)
        }
    }

    /// The entry `name`'s figures go to, whether it is `name`'s own, and the route pushed
    /// into `other` to make room for it, if one was (the caller moves what else is keyed by
    /// that name). Two lookups for a known route; a new one costs at most one eviction.
    pub(super) fn slot(&mut self, name: &str) -> (&mut Route, bool, Option<String>) {
        let mut evicted = None;
        let kept =
            name != OTHER && (self.named.contains_key(name) || self.admit(name, &mut evicted));
        let entry = match self.named.get_mut(name) {
            Some(r) if kept => r,
            _ => self.other.get_or_insert_with(Route::default),
        };
        (entry, kept, evicted)
    }

    /// Adds a route not in the table if it belongs there: there is room, or it sorts before
    /// the last kept name, which then goes to `other` (its name into `evicted`).
    fn admit(&mut self, name: &str, evicted: &mut Option<String>) -> bool {
        if self.named.len() >= MAX_ROUTES {
            match self.named.last_key_value() {
                Some((last, _)) if name < last.as_str() => {}
                _ => return false,
            }
            if let Some((gone, r)) = self.named.pop_last() {
                self.other.get_or_insert_with(Route::default).merge(&r);
                *evicted = Some(gone);
            }
        }
        self.named.insert(name.to_string(), Route::default());
        true
    }
}

#[cfg(test)]
impl std::ops::Index<&str> for Routes {
    type Output = Route;

    fn index(&self, name: &str) -> &Route {
        self.get(name).expect("route in the table")
    }
}
