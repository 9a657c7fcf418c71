//! The replay report: text for people, JSON (DESIGN.md "JSON report") for scripts.
//!
//! Both are drawn from the typed report (`report::model`): `json` makes it from a run's
//! statistics (and statistics again from a saved one), `text` renders it for people.

mod json;
mod text;

pub use json::{parse, report, report_with, stats, to_json};
pub use text::text;

#[cfg(test)]
mod tests;
