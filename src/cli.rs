//! What the user typed, nothing more: the clap definitions of every subcommand and flag.
//! Validation and defaults that depend on other flags live in `settings`.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// Passive HTTP/1.x capture, reassembly and shadow replay with a latency comparison report.
#[derive(Debug, Parser)]
#[command(name = "shadowtap", version, about, max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show the HTTP exchanges shadowtap finds in capture files, then every counter.
    Inspect(InspectArgs),
}

#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// Capture files (pcap or pcapng; several are merged in timestamp order; `-` is stdin).
    #[arg(required = true, value_name = "PCAP")]
    pub files: Vec<PathBuf>,

    /// Only TCP traffic to or from this port (repeatable). HTTP is found by content on any
    /// port when no port is given.
    #[arg(long = "port", value_name = "N")]
    pub ports: Vec<u16>,

    /// Only frames matching this BPF expression (tcpdump syntax, compiled by libpcap for each
    /// file's link type).
    #[arg(long, value_name = "EXPR")]
    pub bpf: Option<String>,

    /// Output: a readable table, or one JSON object per exchange (summary to stderr).
    #[arg(long, value_enum, default_value_t = InspectFormat::Text)]
    pub format: InspectFormat,

    /// Redact credentials (Authorization, Cookie, token-like query values) in the output.
    #[arg(long)]
    pub redact: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum InspectFormat {
    Text,
    Jsonl,
}
