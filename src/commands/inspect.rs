//! `shadowtap inspect`: capture files to exchange lines and a counter summary.
//!
//! One thread runs the whole chain (read → decode → reassemble → frame), which is the fastest
//! arrangement for files: nothing is copied between threads, and reading blocks on nothing.

use std::io::Write;

use anyhow::Context as _;

use crate::capture::{CaptureReader, MergedReader};
use crate::cli::InspectFormat;
use crate::commands::Status;
use crate::http1::{Exchange, Tracker};
use crate::pipeline::{self, Chain, Filter, FilterSpec, Notes};
use crate::report::exchange::{write_jsonl, write_text_header, write_text_row};
use crate::report::summary::Summary;
use crate::settings::InspectSettings;

/// Output is flushed to the writer in blocks of about this size.
const OUT_FLUSH_BYTES: usize = 64 * 1024;

/// Where exchanges go: formatted into a buffer, flushed in blocks; the first write error is kept
/// and stops the run.
struct Lines<'w> {
    out: &'w mut dyn Write,
    buf: Vec<u8>,
    format: InspectFormat,
    redact: bool,
    exchanges: u64,
    answered: u64,
    error: Option<std::io::Error>,
}

impl Lines<'_> {
    fn push(&mut self, ex: &Exchange) {
        self.exchanges += 1;
        self.answered += u64::from(ex.response.is_some());
        match self.format {
            InspectFormat::Jsonl => write_jsonl(&mut self.buf, ex, self.redact),
            InspectFormat::Text => write_text_row(&mut self.buf, ex, self.redact),
        }
        if self.buf.len() >= OUT_FLUSH_BYTES {
            self.flush();
        }
    }

    fn flush(&mut self) {
        if self.error.is_none() {
            if let Err(e) = self.out.write_all(&self.buf) {
                self.error = Some(e);
            }
        }
        self.buf.clear();
    }
}

/// Runs `inspect` and returns its exit status; `out` gets the exchanges (and, in text mode,
/// the summary), `err` the warnings (and, in jsonl mode, the summary).
pub fn run(
    settings: &InspectSettings,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> anyhow::Result<Status> {
    let mut status = Status::Success;
    let spec = FilterSpec::new(settings.ports.clone(), settings.bpf.clone());
    let mut filter = match Filter::new(&spec) {
        Ok(f) => f,
        Err(e) => {
            writeln!(err, "shadowtap: error: {e}")?;
            return Ok(Status::BadInput);
        }
    };

    let mut readers = Vec::with_capacity(settings.files.len());
    let mut open_errors = 0u64;
    for path in &settings.files {
        match CaptureReader::open_with_limits(path, settings.limits.capture.clone()) {
            Ok(r) => readers.push(r),
            Err(e) => {
                writeln!(err, "shadowtap: error: {e}")?;
                open_errors += 1;
                status = Status::BadInput;
            }
        }
    }

    let files_opened = readers.len() as u64;
    let mut frames = MergedReader::new(readers);
    let format = settings.format;
    if format == InspectFormat::Text {
        write_text_header(out).context("writing output")?;
    }
    let mut lines = Lines {
        out,
        buf: Vec::with_capacity(OUT_FLUSH_BYTES * 2),
        format,
        redact: settings.redact,
        exchanges: 0,
        answered: 0,
        error: None,
    };
    {
        let limits = &settings.limits;
        let tracker = Tracker::new(limits.http1.clone(), |ex: Exchange| lines.push(&ex));
        let mut chain = Chain::new(limits.wire.clone(), limits.reassembly.clone(), tracker);
        pipeline::drive(&mut frames, &mut filter, &mut chain, |_| true);
        chain.finish();
        let mut summary = Summary::default();
        summary.add(&frames.counters());
        summary.add(chain.decoder().counters());
        summary.add(chain.reassembler().counters());
        summary.add(chain.sink().counters());
        let notes = Notes::collect(&mut frames, &mut chain, &filter);
        drop(chain);
        lines.flush();
        if let Some(e) = lines.error.take() {
            return Err(e).context("writing output");
        }
        summary.set("inspect.files", files_opened);
        summary.set("pcap.open_errors", open_errors);
        summary.set("inspect.exchanges", lines.exchanges);
        summary.set("inspect.answered", lines.answered);
        summary.set("inspect.port_filtered", filter.port_filtered);
        summary.set("inspect.bpf_filtered", filter.bpf_filtered);

        notes.write_warnings(err)?;
        notes.write_errors(err)?;
        if !notes.errors.is_empty() {
            status = Status::BadInput;
        }
        let summary_out: &mut dyn Write = match format {
            InspectFormat::Text => lines.out,
            InspectFormat::Jsonl => err,
        };
        writeln!(
            summary_out,
            "\nsummary: {} exchanges ({} answered)",
            lines.exchanges, lines.answered
        )
        .context("writing summary")?;
        summary.write_text(summary_out).context("writing summary")?;
    }
    Ok(status)
}
