//! shadowtap: passive HTTP/1.x capture, reassembly and shadow replay.
//!
//! The stages, in flow order (a stage uses only the stages before it; `commands` wires them;
//! docs/architecture.md "Layers and the import rule", checked by `tests/layers.rs`):
//!
//! ```text
//! capture      files (pcap, pcapng) ──Frame<'_>──▶
//! wire         link/IP/TCP decode, IP defrag ──Segment<'_>──▶
//! reassembly   flow table, per-direction byte streams ──StreamEvent<'_>──▶
//! http1        request/response framing and pairing ──Exchange (owned)──▶
//! replay       selection, client, engine, statistics (never imports report)
//! report       text, JSON and HTML renderings
//! commands     what the user asked for; a command never imports another
//! ```
//!
//! `pipeline` is the one driver of that chain (frame source, `--bpf`/`--port` filter, decode,
//! reassembly, tracker, and the warnings they leave), used by every command that reads frames.
//!
//! `redact` removes credentials from what shadowtap writes; `replay`'s log and `report` both
//! use it, so neither imports the other for it.
//!
//! `output` creates every file written (new, mode 0600, never through a link) and counts
//! failed writes, for `capture`'s pcap writer, `replay`'s log and the commands.
//!
//! Borrowed views (`Frame`, `Segment`, `StreamEvent`) never leave the decode loop; an
//! [`http1::Exchange`] is owned and is what crosses to later stages. Every stage keeps its own
//! counters, and every malformed input is counted by reason rather than dropped silently.

pub mod counters;
pub mod output;
pub mod privileges;
pub mod redact;

pub mod capture;
pub mod http1;
pub mod pipeline;
pub mod reassembly;
pub mod replay;
pub mod wire;

pub mod report;

#[doc(hidden)]
pub mod fuzzing;

pub mod cli;
pub mod commands;
pub mod settings;
