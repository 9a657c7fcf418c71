//! Validated, typed settings built from the command line: the limits of every stage and what
//! each command needs, so the library can be driven in-process without clap. Parsing and
//! checking only, no I/O: the shadow's name is resolved and its TLS files read by
//! [`crate::replay::target::resolve`], which the commands call before the run.

use std::path::PathBuf;

use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};

use crate::capture::live::{port_filter, LiveConfig};
use crate::cli::{InspectArgs, InspectFormat, LiveArgs, ReplayArgs, ReportFormat, ShadowArgs};
use crate::replay::request::{HostHeader, Rewrites};
use crate::replay::sample::SampleBy;
use crate::replay::select::Selection;
use crate::replay::target::ShadowSpec;
use crate::replay::tls::TlsSpec;

/// The limits of every stage; defaults are RELIABILITY.md section 4.
#[derive(Clone, Debug, Default)]
pub struct Limits {
    pub capture: crate::capture::Limits,
    pub wire: crate::wire::Limits,
    pub reassembly: crate::reassembly::Limits,
    pub http1: crate::http1::Limits,
}

impl Limits {
    /// The defaults, with the HTTP stage's memory budget from `--http-memcap`.
    fn with_http_memcap(text: &str) -> anyhow::Result<Limits> {
        let memcap = parse_size(text)
            .and_then(|n| usize::try_from(n).map_err(|_| anyhow!("size {text:?} out of range")))
            .context("--http-memcap")?;
        let mut limits = Limits::default();
        limits.http1.memcap = memcap;
        Ok(limits)
    }
}

#[derive(Clone, Debug)]
pub struct InspectSettings {
    pub files: Vec<PathBuf>,
    pub ports: Vec<u16>,
    pub bpf: Option<String>,
    pub format: InspectFormat,
    pub redact: bool,
    pub limits: Limits,
}

impl InspectSettings {
    pub fn from_args(args: InspectArgs) -> anyhow::Result<Self> {
        let mut ports = args.ports;
        ports.sort_unstable();
        ports.dedup();
        Ok(InspectSettings {
            files: args.files,
            ports,
            bpf: args.bpf,
            format: args.format,
            redact: args.redact,
            limits: Limits::with_http_memcap(&args.http_memcap)?,
        })
    }
}

/// How fast requests are sent (`--speed`); the replay's schedule keeps it.
pub use crate::replay::schedule::Speed;

#[derive(Clone, Debug)]
pub struct ReplaySettings {
    pub files: Vec<PathBuf>,
    /// `--shadow`, parsed; resolved before the run by [`crate::replay::target::resolve`].
    pub shadow: ShadowSpec,
    /// The authority written as Host by default.
    pub shadow_authority: String,
    pub selection: Selection,
    pub rewrites: Rewrites,
    pub speed: Speed,
    /// Requests per second at most (`--rate`).
    pub rate: Option<f64>,
    pub concurrency: usize,
    pub timeout: Duration,
    /// `--drain-timeout`: how long the end of a run waits for the shadow.
    pub drain_timeout: Duration,
    pub allow_production_target: bool,
    pub format: ReportFormat,
    pub report_json: Option<PathBuf>,
    pub log: Option<PathBuf>,
    /// `--force`: an existing `--log` or `--save-pcap` path is replaced rather than refused.
    pub force: bool,
    /// A capture held in memory (`demo`'s bundled one), read instead of opening `files`
    /// (whose one name then only titles it).
    pub bundled: Option<Bundled>,
    pub fail_if: Vec<crate::report::gate::Condition>,
    /// The verdicts' practical thresholds.
    pub thresholds: crate::report::verdict::Thresholds,
    /// `--keep-order`.
    pub order: crate::replay::engine::Order,
    /// What the report calls the input (the file names when None).
    pub title: Option<String>,
    pub progress: crate::cli::Progress,
    pub limits: Limits,
    /// `--port` and `--bpf`: what of the capture files is read.
    pub filter: crate::pipeline::FilterSpec,
}

/// A capture file's bytes held in memory, read in place of a path.
#[derive(Clone, Copy)]
pub struct Bundled(pub &'static [u8]);

impl std::fmt::Debug for Bundled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Bundled({} bytes)", self.0.len())
    }
}

/// What a live capture opens (`capture`, `mirror`): `--duration` and `--buffer-size` parsed,
/// the BPF expression from `--bpf` or `--port`.
pub fn live_config(args: &LiveArgs) -> anyhow::Result<LiveConfig> {
    let duration = args.duration.as_deref().map(parse_duration).transpose()?;
    let buffer = parse_size(&args.buffer_size)?;
    Ok(LiveConfig {
        interface: args.interface.clone(),
        filter: args.bpf.clone().unwrap_or_else(|| port_filter(&args.ports)),
        duration,
        buffer,
        promisc: args.promisc,
    })
}

/// Parses `100us`, `500ms`, `5s`, `2m`, `1h`.
pub fn parse_duration(text: &str) -> anyhow::Result<Duration> {
    let t = text.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| anyhow!("invalid duration {text:?} (use 500ms, 5s, 2m)"))?;
    let secs = match unit {
        "us" | "µs" => n / 1e6,
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => bail!("invalid duration {text:?} (use 500ms, 5s, 2m)"),
    };
    if !(secs > 0.0 && secs.is_finite()) {
        bail!("duration {text:?} must be positive");
    }
    Ok(Duration::from_secs_f64(secs))
}

impl ReplaySettings {
    pub fn from_args(args: ReplayArgs) -> anyhow::Result<Self> {
        let speed = if args.speed == "max" {
            Speed::Max
        } else {
            match args.speed.parse::<f64>() {
                Ok(f) if f > 0.0 && f.is_finite() => Speed::Factor(f),
                _ => bail!("--speed {:?}: use a positive factor or max", args.speed),
            }
        };
        let mut settings = Self::build(args.files, speed, args.progress, args.shadow)?;
        settings.filter = crate::pipeline::FilterSpec::new(args.ports, args.bpf);
        Ok(settings)
    }

    /// The settings `mirror` shares with `replay`: requests go as they are seen.
    pub fn for_mirror(args: ShadowArgs) -> anyhow::Result<Self> {
        Self::build(Vec::new(), Speed::Max, crate::cli::Progress::Never, args)
    }

    fn build(
        files: Vec<PathBuf>,
        speed: Speed,
        progress: crate::cli::Progress,
        args: ShadowArgs,
    ) -> anyhow::Result<Self> {
        let (https, rest) = if let Some(r) = args.shadow.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = args.shadow.strip_prefix("http://") {
            (false, r)
        } else {
            bail!(
                "--shadow {:?}: use http://HOST[:PORT] or https://HOST[:PORT]",
                args.shadow
            );
        };
        let authority = rest.split('/').next().unwrap_or_default().to_string();
        if authority.is_empty() {
            bail!("--shadow {:?}: no host", args.shadow);
        }
        let with_port = if authority
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
            && !authority.ends_with(']')
        {
            authority.clone()
        } else {
            format!("{authority}:{}", if https { 443 } else { 80 })
        };
        let regex =
            |flag: &str, re: Option<String>| -> anyhow::Result<Option<regex::bytes::Regex>> {
                re.map(|r| regex::bytes::Regex::new(&r).with_context(|| format!("{flag} {r:?}")))
                    .transpose()
            };
        if !(0.0..=100.0).contains(&args.sample) {
            bail!("--sample {} must be between 0 and 100", args.sample);
        }
        let selection = Selection {
            // As typed: methods are case-sensitive (RFC 9110 section 9.1).
            allow_methods: args.allow_methods,
            allow_writes: args.allow_writes,
            include_path: regex("--include-path", args.include_path)?,
            exclude_path: regex("--exclude-path", args.exclude_path)?,
            sample_percent: args.sample,
            sample_by: match args.sample_by.as_deref() {
                None => SampleBy::Route,
                Some(by) => SampleBy::parse(by).ok_or_else(|| {
                    anyhow!("--sample-by {by:?}: use header:NAME, client or connection")
                })?,
            },
            seed: args.seed,
        };
        let host = match args.host_header.as_deref() {
            None => HostHeader::Shadow(authority.clone()),
            Some("keep") => HostHeader::Keep,
            Some(v) => HostHeader::Value(v.to_string()),
        };
        let mut set = Vec::new();
        for h in &args.set_headers {
            let (k, v) = h
                .split_once(':')
                .ok_or_else(|| anyhow!("--set-header {h:?}: use 'Name: value'"))?;
            let k = k.trim();
            if k.is_empty()
                || !k
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
            {
                bail!("--set-header {h:?}: invalid header name");
            }
            set.push((k.to_string(), v.trim().to_string()));
        }
        let limits = Limits::with_http_memcap(&args.http_memcap)?;
        if args.concurrency == 0 {
            bail!("--concurrency must be at least 1");
        }
        if let Some(rate) = args.rate.filter(|r| !(*r > 0.0 && r.is_finite())) {
            bail!("--rate {rate}: use a positive number of requests per second");
        }
        Ok(ReplaySettings {
            files,
            shadow: ShadowSpec {
                tls: https.then(|| TlsSpec {
                    host: authority
                        .rsplit_once(':')
                        .filter(|(_, p)| p.parse::<u16>().is_ok())
                        .map_or(authority.as_str(), |(h, _)| h)
                        .to_string(),
                    ca: args.shadow_ca,
                    insecure: args.insecure,
                }),
                url: args.shadow,
                host_port: with_port,
            },
            shadow_authority: authority,
            selection,
            rewrites: Rewrites {
                host,
                set,
                strip: args.strip_headers,
            },
            speed,
            rate: args.rate,
            concurrency: args.concurrency,
            timeout: parse_duration(&args.timeout)?,
            drain_timeout: parse_duration(&args.drain_timeout)
                .map_err(|e| anyhow!("--drain-timeout: {e}"))?,
            allow_production_target: args.allow_production_target,
            format: args.format,
            report_json: args.report_json,
            log: args.log,
            force: args.force,
            bundled: None,
            fail_if: match &args.fail_if {
                Some(text) => crate::report::gate::parse(text)?,
                None => Vec::new(),
            },
            thresholds: thresholds(&args.thresholds)?,
            order: match args.keep_order {
                crate::cli::KeepOrder::None => crate::replay::engine::Order::Independent,
                crate::cli::KeepOrder::Connection => crate::replay::engine::Order::Connection,
            },
            title: None,
            progress,
            limits,
            filter: crate::pipeline::FilterSpec::default(),
        })
    }
}

/// The verdicts' thresholds: `--min-change 5%` (or `5`), `--min-change-abs 100us`,
/// `--min-rate-change 1` (percentage points).
pub fn thresholds(
    args: &crate::cli::ThresholdArgs,
) -> anyhow::Result<crate::report::verdict::Thresholds> {
    let share = args.min_change.trim().trim_end_matches('%');
    let share: f64 = share
        .trim()
        .parse()
        .ok()
        .filter(|s: &f64| (0.0..=1000.0).contains(s))
        .ok_or_else(|| {
            anyhow!(
                "--min-change {:?}: a percentage, such as 5%",
                args.min_change
            )
        })?;
    let abs = parse_duration(&args.min_change_abs)
        .with_context(|| format!("--min-change-abs {:?}", args.min_change_abs))?;
    if !(0.0..=100.0).contains(&args.min_rate_change) {
        bail!(
            "--min-rate-change {}: percentage points, 0 to 100",
            args.min_rate_change
        );
    }
    Ok(crate::report::verdict::Thresholds {
        latency_share: share / 100.0,
        latency_us: abs.as_secs_f64() * 1e6,
        rate: args.min_rate_change / 100.0,
    })
}

/// Parses `16MiB`, `100MB`, `512KiB`, `1GiB` or a number of bytes.
pub fn parse_size(text: &str) -> anyhow::Result<u64> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| anyhow!("invalid size {text:?} (use 64KiB, 16MiB, 1GiB)"))?;
    let factor: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" | "K" => 1 << 10,
        "KB" => 1_000,
        "MiB" | "M" => 1 << 20,
        "MB" => 1_000_000,
        "GiB" | "G" => 1 << 30,
        "GB" => 1_000_000_000,
        _ => bail!("invalid size {text:?} (use 64KiB, 16MiB, 1GiB)"),
    };
    n.checked_mul(factor)
        .filter(|v| *v > 0)
        .ok_or_else(|| anyhow!("size {text:?} out of range"))
}
