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
    /// Replay the captured requests to a shadow deployment and compare it with production.
    Replay(Box<ReplayArgs>),
    /// Mirror live traffic off an interface to a shadow and compare it with production.
    Mirror(Box<MirrorArgs>),
    /// Record live traffic off an interface to a pcap file (an HTTP-aware tcpdump).
    Capture(CaptureArgs),
    /// Replay a bundled capture against an embedded shadow with regressions, and show the report.
    Demo(DemoArgs),
    /// Render saved JSON reports; several are merged exactly (histograms merged, not averaged).
    Report(ReportArgs),
}

#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// JSON reports written by `replay --report-json` (or `report --format json`).
    #[arg(required = true, value_name = "REPORT.json")]
    pub files: Vec<PathBuf>,

    /// Output format.
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    pub format: ReportFormat,

    /// Write to this file instead of stdout (written whole, then renamed over PATH).
    #[arg(long, value_name = "PATH")]
    pub output: Option<PathBuf>,

    #[command(flatten)]
    pub thresholds: ThresholdArgs,

    /// Merge reports of runs against different shadows (refused otherwise: their figures
    /// measure different services).
    #[arg(long)]
    pub allow_mixed: bool,

    /// Merge a run that is already in the merge again (refused otherwise: its requests
    /// would count twice).
    #[arg(long)]
    pub allow_repeats: bool,
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

    /// Bytes the HTTP stage may hold across all connections (partial heads, waiting
    /// requests, kept bodies); past it heads and bodies are given up and counted.
    #[arg(long, default_value = "128MiB", value_name = "SIZE")]
    pub http_memcap: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum InspectFormat {
    Text,
    Jsonl,
}

/// `--keep-order`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum KeepOrder {
    /// Each request on its own.
    None,
    /// One captured connection's requests one after the other.
    Connection,
}

#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// Capture files (pcap or pcapng; several are merged in timestamp order).
    #[arg(required = true, value_name = "PCAP")]
    pub files: Vec<PathBuf>,

    #[command(flatten)]
    pub shadow: ShadowArgs,

    /// Only TCP traffic to or from this port (repeatable), as `inspect --port`: other
    /// connections are not read, so their requests are not seen.
    #[arg(long = "port", value_name = "N")]
    pub ports: Vec<u16>,

    /// Only frames matching this BPF expression (tcpdump syntax), as `inspect --bpf`.
    #[arg(long, value_name = "EXPR")]
    pub bpf: Option<String>,

    /// Pacing: `1` keeps the recorded inter-arrival times, `10` is ten times faster, `max`
    /// sends as fast as the concurrency allows.
    #[arg(long, default_value = "1", value_name = "FACTOR|max")]
    pub speed: String,

    /// Progress on stderr: redrawn in place on a terminal and a line every 10 s otherwise
    /// (`auto`), always redrawn in place, or never.
    #[arg(long, value_enum, default_value_t = Progress::Auto)]
    pub progress: Progress,
}

/// What `replay` and `mirror` share: the shadow, selection, rewrites, limits and outputs.
#[derive(Debug, clap::Args)]
pub struct ShadowArgs {
    /// Where to send the requests: `http://HOST[:PORT]` or `https://HOST[:PORT]` (the shadow).
    #[arg(long, value_name = "URL")]
    pub shadow: String,

    /// Also trust the CA certificates in this PEM file for an `https://` shadow.
    #[arg(long, value_name = "FILE")]
    pub shadow_ca: Option<PathBuf>,

    /// Do not verify an `https://` shadow's certificate.
    #[arg(long)]
    pub insecure: bool,

    /// Also replay this method (repeatable); only GET, HEAD and OPTIONS are replayed otherwise.
    /// Compared exactly, as methods are case-sensitive: `DELETE` does not allow `delete`.
    #[arg(long = "allow-method", value_name = "METHOD")]
    pub allow_methods: Vec<String>,

    /// Replay every method, writes included.
    #[arg(long)]
    pub allow_writes: bool,

    /// Only requests whose path matches this regular expression.
    #[arg(long, value_name = "REGEX")]
    pub include_path: Option<String>,

    /// Not the requests whose path matches this regular expression.
    #[arg(long, value_name = "REGEX")]
    pub exclude_path: Option<String>,

    /// Replay this percentage of the selected requests: every route gets its share (floor or
    /// ceil of its count x PERCENT / 100), taken systematically from `--seed`.
    #[arg(long, value_name = "PERCENT", default_value_t = 100.0)]
    pub sample: f64,

    /// What `--sample` draws over instead of each route's requests: `header:NAME`, `client` or
    /// `connection`, each hashed with `--seed`, so a session, client or connection is all in
    /// or all out.
    #[arg(long, value_name = "header:NAME|client|connection")]
    pub sample_by: Option<String>,

    /// Which requests `--sample` takes: the same seed takes the same requests.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub seed: u64,

    /// `connection`: the requests of one captured connection go one after the other, each
    /// once the shadow answered the one before (for stateful flows). By default each request
    /// goes on its own to a free connection.
    #[arg(long, value_enum, value_name = "connection|none", default_value_t = KeepOrder::None)]
    pub keep_order: KeepOrder,

    /// Host header: the shadow URL's authority (default), `keep` (the captured one), or a value.
    #[arg(long, value_name = "keep|VALUE")]
    pub host_header: Option<String>,

    /// Set a header on every replayed request, replacing the captured one (`'K: V'`, repeatable).
    #[arg(long = "set-header", value_name = "'K: V'")]
    pub set_headers: Vec<String>,

    /// Remove a header from every replayed request (repeatable).
    #[arg(long = "strip-header", value_name = "NAME")]
    pub strip_headers: Vec<String>,

    /// Requests per second at most, over all connections (`0.5` is one every two seconds).
    /// replay: requests due sooner wait for their turn, and the wait counts as lateness.
    /// mirror: requests over it are dropped and counted (`rate_limit`), after a burst of up
    /// to one second's worth.
    #[arg(long, value_name = "N")]
    pub rate: Option<f64>,

    /// Bytes the HTTP stage may hold across all connections (partial heads, waiting
    /// requests, kept bodies); past it heads and bodies are given up and counted (`memcap`).
    #[arg(long, default_value = "128MiB", value_name = "SIZE")]
    pub http_memcap: String,

    /// Requests in flight at most (and connections to the shadow).
    #[arg(long, default_value_t = 64, value_name = "N")]
    pub concurrency: usize,

    /// Deadline for each whole exchange with the shadow (`500ms`, `5s`, `2m`).
    #[arg(long, default_value = "5s", value_name = "DURATION")]
    pub timeout: String,

    /// How long the end of a run waits for the shadow: on SIGINT or SIGTERM (and for
    /// `mirror`, at the end of `--duration`) what is still queued or in flight after this is
    /// given up and counted (`dropped/shutdown`; the shadow error `shutdown`). A second signal
    /// gives up at once.
    #[arg(long, default_value = "5s", value_name = "DURATION")]
    pub drain_timeout: String,

    /// Send requests even to an address that is a server in the capture (production).
    #[arg(long)]
    pub allow_production_target: bool,

    /// Report format on stdout.
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    pub format: ReportFormat,

    /// Also write the JSON report to this file (written whole, then renamed over PATH).
    #[arg(long, value_name = "PATH")]
    pub report_json: Option<PathBuf>,

    /// Write one JSON line per replayed exchange (both sides' status and timings) here.
    #[arg(long, value_name = "PATH")]
    pub log: Option<PathBuf>,

    /// Replace an existing `--log` (or `--save-pcap`) file: it is unlinked (a symbolic link
    /// itself, never its target) and created anew. Without it an existing path is refused.
    #[arg(long)]
    pub force: bool,

    /// Exit with 3 when a threshold is crossed, for example
    /// `shadow.error_rate>0.01,shadow.ttfb_p99>1.2*production.ttfb_p99`; with 4 when one
    /// cannot be evaluated (no samples, too few requests) or nothing was replayed.
    #[arg(long, value_name = "CONDITIONS")]
    pub fail_if: Option<String>,

    #[command(flatten)]
    pub thresholds: ThresholdArgs,
}

/// The practical thresholds of the verdicts: smaller changes are never called regressions
/// or improvements.
#[derive(Debug, Clone, clap::Args)]
pub struct ThresholdArgs {
    /// Latency changes count only above this share of production's value (or
    /// `--min-change-abs`, whichever is larger).
    #[arg(long, value_name = "PERCENT", default_value = "5%")]
    pub min_change: String,

    /// ...and above this duration.
    #[arg(long, value_name = "DURATION", default_value = "100us")]
    pub min_change_abs: String,

    /// Rate changes (error rate, 4xx and 5xx shares) count only above this many percentage
    /// points.
    #[arg(long, value_name = "POINTS", default_value = "1")]
    pub min_rate_change: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    Text,
    Json,
    /// One self-contained HTML file with latency distribution plots.
    Html,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Progress {
    Auto,
    Always,
    Never,
}

/// Where and how to capture live traffic (`capture` and `mirror`).
#[derive(Debug, clap::Args)]
pub struct LiveArgs {
    /// Interface to capture on (`lo`, `eth0`, `any`).
    #[arg(long, short = 'i', value_name = "IF")]
    pub interface: String,

    /// Only TCP traffic to or from this port, both directions (repeatable).
    #[arg(long = "port", value_name = "N")]
    pub ports: Vec<u16>,

    /// A BPF filter instead (tcpdump syntax); without it and `--port`, all TCP.
    #[arg(long, value_name = "EXPR")]
    pub bpf: Option<String>,

    /// Stop after this long (`30s`, `5m`); otherwise at SIGINT or SIGTERM.
    #[arg(long, value_name = "DURATION")]
    pub duration: Option<String>,

    /// Kernel capture buffer (`16MiB`).
    #[arg(long, default_value = "16MiB", value_name = "SIZE")]
    pub buffer_size: String,

    /// Promiscuous mode, for a tap or SPAN port.
    #[arg(long)]
    pub promisc: bool,

    /// Drop to this user (and its group) once the capture is open.
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct CaptureArgs {
    #[command(flatten)]
    pub live: LiveArgs,

    /// File to write (classic pcap, nanosecond timestamps; a new file readable by its owner
    /// only).
    #[arg(long, short = 'w', value_name = "PATH")]
    pub write: PathBuf,

    /// Stop after this many HTTP exchanges.
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,

    /// Start a new file (PATH.1, PATH.2, ...) when the current one reaches this size (`100MiB`).
    #[arg(long, value_name = "SIZE")]
    pub rotate_size: Option<String>,

    /// Replace existing output files (PATH, and PATH.1, PATH.2, ... when rotating): each is
    /// unlinked (a symbolic link itself, never its target) and created anew. Without it an
    /// existing path is refused.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, clap::Args)]
pub struct MirrorArgs {
    #[command(flatten)]
    pub live: LiveArgs,

    #[command(flatten)]
    pub shadow: ShadowArgs,

    /// A status line on stderr this often (`10s`).
    #[arg(long, default_value = "10s", value_name = "DURATION")]
    pub interval: String,

    /// Also keep what was captured in this pcap file (a new file readable by its owner only),
    /// for a later `replay`.
    #[arg(long, value_name = "PATH")]
    pub save_pcap: Option<PathBuf>,

    /// Serve Prometheus metrics on this address (`127.0.0.1:9090`) at `/metrics`.
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<std::net::SocketAddr>,

    /// Requests waiting for each replay thread at most (and 64 MiB of them); more are dropped
    /// and counted (`dropped/queue_full`), so capture never waits on the shadow.
    #[arg(long, default_value_t = 1024, value_name = "N")]
    pub queue: usize,
}

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Live on loopback: embedded v1 and v2 servers and a client, libpcap on `lo`, v1's
    /// traffic mirrored to v2 (needs capture privilege).
    #[arg(long)]
    pub live: bool,
}
