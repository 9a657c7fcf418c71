//! Numbers and exchanges to text and JSON: the `inspect` lines, counter summaries and the
//! replay report (redaction is [`crate::redact`], shared with `replay`'s log). No statistics
//! and no I/O decisions here: every function writes to the `Write` it is given.

pub mod exchange;
pub mod gate;
pub mod html;
pub mod metrics_server;
pub mod model;
pub mod prometheus;
pub mod replay;
pub mod saved;
pub mod summary;
pub mod verdict;
