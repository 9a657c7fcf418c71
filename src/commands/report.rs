//! `shadowtap report`: render saved JSON reports, merging several (counts add up, histograms
//! merge losslessly), which is how reports from many nodes become one.

use std::io::Write;

use crate::cli::{ReportArgs, ReportFormat};
use crate::commands::Status;
use crate::replay::stats::Stats;
use crate::report::model::{Run, MAX_RUNS};
use crate::report::replay as render;
use crate::report::saved::MAX_REPORT_BYTES;

/// A saved report's bytes, refused past [`MAX_REPORT_BYTES`] without reading further: the
/// file is as untrusted as a capture.
fn read_bounded(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    use std::io::Read as _;
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(MAX_REPORT_BYTES + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_REPORT_BYTES {
        anyhow::bail!(
            "larger than {} MiB, more than any report",
            MAX_REPORT_BYTES >> 20
        );
    }
    Ok(bytes)
}

/// Why `report` may not join `merging` to the runs merged so far: another shadow, or a run
/// already in (unless the flags allow it).
fn refusal(args: &ReportArgs, runs: &[Run], merging: &[Run]) -> Option<String> {
    if runs.len() + merging.len() > MAX_RUNS {
        return Some(format!(
            "more than the {MAX_RUNS} runs a report holds in the merge"
        ));
    }
    if !args.allow_repeats {
        if let Some(run) = merging.iter().find(|r| runs.iter().any(|s| s.id == r.id)) {
            return Some(format!(
                "run {} is already in the merge: its requests would count twice (--allow-repeats merges it again)",
                run.id
            ));
        }
    }
    if !args.allow_mixed {
        let theirs = merging.iter().map(|r| &r.shadow);
        let ours = runs.first().map(|r| &r.shadow);
        if let (Some(ours), Some(other)) = (ours, theirs.clone().find(|s| Some(*s) != ours)) {
            return Some(format!(
                "measured the shadow {other}, the reports before it {ours}: different services (--allow-mixed merges them anyway)"
            ));
        }
    }
    None
}

pub fn run(args: &ReportArgs, out: &mut dyn Write, err: &mut dyn Write) -> anyhow::Result<Status> {
    let thresholds = match crate::settings::thresholds(&args.thresholds) {
        Ok(t) => t,
        Err(e) => {
            writeln!(err, "shadowtap: error: {e:#}")?;
            return Ok(Status::BadInput);
        }
    };
    let mut merged = Stats::default();
    let mut runs: Vec<Run> = Vec::new();
    let mut status = Status::Success;
    let mut read = 0;
    for path in &args.files {
        let parsed = read_bounded(path)
            .and_then(|bytes| render::parse(&bytes))
            .and_then(|report| {
                if let Some(why) = refusal(args, &runs, &report.runs) {
                    anyhow::bail!(why);
                }
                Ok((render::stats(&report)?, report.runs))
            });
        match parsed {
            Ok((stats, these)) => {
                merged.merge(&stats);
                runs.extend(these);
                read += 1;
            }
            Err(e) => {
                writeln!(err, "shadowtap: error: {}: {e:#}", path.display())?;
                status = Status::BadInput;
            }
        }
    }
    if read == 0 {
        return Ok(status);
    }
    let mut report = render::report_with(&merged, &thresholds);
    // Oldest first, whatever order the files came in.
    runs.sort_by(|a, b| a.ran.start.total_cmp(&b.ran.start).then(a.id.cmp(&b.id)));
    report.runs = runs;
    let text = match args.format {
        ReportFormat::Json => render::to_json(&report)? + "\n",
        ReportFormat::Text | ReportFormat::Html => {
            let names: Vec<String> = args.files.iter().map(|p| p.display().to_string()).collect();
            let title = format!("shadowtap report  {}", names.join(" "));
            if args.format == ReportFormat::Html {
                crate::report::html::page(&report, &title)
            } else {
                render::text(&report, &title)
            }
        }
    };
    match &args.output {
        // Written whole beside the target and renamed over it: never through a link, and a
        // failure leaves the previous file as it was.
        Some(path) => {
            if let Err(e) = crate::output::write_atomic(path, text.as_bytes()) {
                writeln!(err, "shadowtap: error: {e}")?;
                // An unreadable input (exit 2) takes precedence.
                return Ok(match status {
                    Status::BadInput => status,
                    _ => Status::Failure,
                });
            }
        }
        None => out.write_all(text.as_bytes())?,
    }
    Ok(status)
}
