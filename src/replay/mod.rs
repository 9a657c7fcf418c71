//! Exchanges to the shadow: which are replayed (selection), the bytes sent (rewrites), the
//! HTTP/1.1 client and its connection pool, and the statistics of both sides.
//!
//! Owns: selection and accounting reasons, request rewriting, shadow I/O and timing, the
//! side-by-side statistics. Does not own: capture and framing (the stages before) or how the
//! report is written (that is `report`).

pub mod client;
pub mod gate;
pub mod request;
pub mod select;
pub mod stats;
pub mod tls;
