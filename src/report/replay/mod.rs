//! The replay report: text for people, JSON (DESIGN.md "JSON report") for scripts.
//!
//! The text form is `text`, the JSON form (written, and read back) `json`.

mod json;
mod text;

pub use json::{from_json, json};
pub use text::text;

/// The percentiles reported, with their JSON keys and text labels.
const PERCENTILES: &[(&str, &str, f64)] = &[
    ("p50", "p50", 50.0),
    ("p90", "p90", 90.0),
    ("p95", "p95", 95.0),
    ("p99", "p99", 99.0),
    ("p999", "p99.9", 99.9),
];

#[cfg(test)]
mod tests;
