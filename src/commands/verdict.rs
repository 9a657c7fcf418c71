//! How a replay or mirror run ends, the same for both: the report on stdout, the
//! `--fail-if` verdicts, the warnings, and the exit status the results earned (DESIGN.md
//! "Exit codes"). Shared by the `replay` and `mirror` commands, so neither imports the other.

use std::io::Write;
use std::net::SocketAddr;

use crate::cli::ReportFormat;
use crate::commands::Status;
use crate::replay::client::{Failure, Trouble};
use crate::replay::select::Skip;
use crate::replay::stats::{Reason, Stats};
use crate::report::gate;
use crate::report::model::{Report, REPRESENTATIVE};
use crate::report::replay as render;
use crate::settings::ReplaySettings;

/// The report on stdout, as `--format` asks: JSON, HTML, or the text report with `lines`
/// (what the run's outputs and capture say) and the `--fail-if` verdicts under it.
pub(crate) fn print_report(
    format: ReportFormat,
    report: &Report,
    title: &str,
    lines: &[String],
    verdicts: &[gate::Verdict],
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    match format {
        ReportFormat::Json => writeln!(out, "{}", render::to_json(report)?)?,
        ReportFormat::Html => write!(out, "{}", crate::report::html::page(report, title))?,
        ReportFormat::Text => {
            write!(out, "{}", render::text(report, title))?;
            for line in lines {
                writeln!(out, "{line}")?;
            }
            print_verdicts(verdicts, out)?;
        }
    }
    out.flush()?;
    Ok(())
}

/// The warning for requests not sent because the shadow is a production server.
pub(crate) fn warn_production_target(
    stats: &Stats,
    shadow: SocketAddr,
    err: &mut dyn Write,
) -> std::io::Result<()> {
    let n = stats.skipped.get(Reason::Skip(Skip::ProductionTarget));
    if n > 0 {
        writeln!(
            err,
            "shadowtap: warning: {n} requests not sent: the shadow {} is a server in the capture (production); --allow-production-target sends them",
            shadow
        )?;
    }
    Ok(())
}

/// Evaluates `--fail-if` on the report and adds the verdicts to it as `fail_if`.
pub(crate) fn fail_if(settings: &ReplaySettings, report: &mut Report) -> Vec<gate::Verdict> {
    let verdicts = gate::evaluate(&settings.fail_if, report);
    if !verdicts.is_empty() {
        report.fail_if = Some(verdicts.iter().map(gate::Verdict::to_model).collect());
    }
    verdicts
}

/// The `--fail-if` lines under a text report.
pub(crate) fn print_verdicts(
    verdicts: &[gate::Verdict],
    out: &mut dyn Write,
) -> std::io::Result<()> {
    for v in verdicts {
        if let Some(why) = &v.not_evaluated {
            writeln!(out, "fail-if {}: NOT EVALUATED ({why})", v.condition)?;
            continue;
        }
        let mark = if v.crossed { "CROSSED" } else { "ok" };
        writeln!(
            out,
            "fail-if {}: {} ({} vs {})",
            v.condition, mark, v.left, v.right
        )?;
    }
    Ok(())
}

/// One line per kind of failure that happened, in words, with its count: `shadow
/// 127.0.0.1:18099: connect: connection refused (66 of 66)`; and how often and how long the
/// circuit breaker was open.
fn failures(
    stats: &Stats,
    settings: &ReplaySettings,
    trouble: &Trouble,
    err: &mut dyn Write,
) -> std::io::Result<()> {
    let shadow = &settings.shadow_authority;
    for (kind, words) in &trouble.words {
        let n = stats.shadow.errors.get(*kind);
        if n == 0 || *kind == Failure::CircuitOpen {
            continue;
        }
        writeln!(
            err,
            "shadowtap: warning: shadow {shadow}: {}: {words} ({n} of {} requests)",
            kind.name(),
            stats.replayed
        )?;
    }
    let (opened, open_for) = trouble.breaker;
    if opened > 0 {
        writeln!(
            err,
            "shadowtap: warning: shadow {shadow}: the circuit breaker opened {opened} time{}, {:.1} s in all: {} requests not sent (circuit_open)",
            if opened == 1 { "" } else { "s" },
            open_for.as_secs_f64(),
            stats.shadow.errors.get(Failure::CircuitOpen)
        )?;
    }
    Ok(())
}

/// The exit status a replay or mirror run earned from its results (DESIGN.md "Exit codes";
/// the caller adds unreadable inputs and signals), saying on `err` why when it is not 0 or 3.
/// 1: every replayed request failed in transport (the shadow unreachable; requests cut by
/// the drain deadline do not count either way). 4: a `--fail-if` condition could not be
/// evaluated, nothing was replayed under `--fail-if`, or too much was dropped. 3: a condition
/// crossed.
pub(crate) fn outcome(
    stats: &Stats,
    settings: &ReplaySettings,
    trouble: &Trouble,
    verdicts: &[gate::Verdict],
    err: &mut dyn Write,
) -> std::io::Result<Status> {
    let mut status = Status::Success;
    failures(stats, settings, trouble, err)?;
    let errors = &stats.shadow.errors;
    let cut = errors.get(Failure::Shutdown);
    let failed = errors.blamed();
    if stats.replayed > cut && failed == stats.replayed - cut {
        writeln!(
            err,
            "shadowtap: error: every request sent to the shadow failed ({failed}: {}); is {} reachable?",
            errors
                .iter()
                .filter(|(k, n)| *n > 0 && !k.is_ours())
                .map(|(k, n)| format!("{} {n}", k.name()))
                .collect::<Vec<_>>()
                .join(", "),
            settings.shadow_authority
        )?;
        status = Status::worst(status, Status::Failure);
    }
    let dropped = stats.dropped_total();
    let selected = stats.replayed + dropped;
    if selected > 0 && (stats.replayed as f64) < REPRESENTATIVE * selected as f64 {
        writeln!(
            err,
            "shadowtap: warning: not representative: {} of {selected} selected requests replayed, {dropped} dropped (below {:.0}%)",
            stats.replayed,
            100.0 * REPRESENTATIVE
        )?;
        status = Status::worst(status, Status::Inconclusive);
    }
    if stats.replayed == 0 {
        if settings.fail_if.is_empty() {
            writeln!(err, "shadowtap: warning: nothing was replayed")?;
        } else {
            writeln!(
                err,
                "shadowtap: warning: nothing was replayed, so --fail-if cannot pass"
            )?;
            status = Status::worst(status, Status::Inconclusive);
        }
    }
    for v in verdicts {
        if let Some(why) = &v.not_evaluated {
            writeln!(
                err,
                "shadowtap: warning: --fail-if {} not evaluated: {why}",
                v.condition
            )?;
            status = Status::worst(status, Status::Inconclusive);
        } else if v.crossed {
            status = Status::worst(status, Status::Threshold);
        }
    }
    Ok(status)
}
