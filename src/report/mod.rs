//! Numbers and exchanges to text and JSON: the `inspect` lines, counter summaries, and the
//! redaction applied to what shadowtap writes. No statistics and no I/O decisions here: every
//! function writes to the `Write` it is given.

pub mod exchange;
pub mod html;
pub mod metrics_server;
pub mod prometheus;
pub mod redact;
pub mod replay;
pub mod saved;
pub mod summary;
