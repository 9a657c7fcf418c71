//! The files `replay` and `mirror` write besides stdout (`--log`, `--report-json`), created
//! before the run and finished after its report: see [`crate::output`] for how.

use std::io::Write;
use std::sync::{Arc, Mutex};

use anyhow::Context as _;

use crate::output::{OutputError, Staged, Stream, Summary};
use crate::replay::engine;
use crate::settings::ReplaySettings;

/// The files a replay or mirror writes besides stdout, created at the start: the `--log`
/// stream and the `--report-json` report (staged, renamed into place at the end).
pub(crate) struct Outputs {
    pub(crate) log: Option<engine::SharedLog>,
    report: Option<Staged>,
}

impl Outputs {
    pub(crate) fn create(settings: &ReplaySettings) -> Result<Outputs, OutputError> {
        // The report first: a log created before a failure would be in the next run's way.
        let report = settings
            .report_json
            .as_deref()
            .map(Staged::create)
            .transpose()?;
        let log = match &settings.log {
            Some(path) => Some(Arc::new(Mutex::new(Stream::create(path, settings.force)?))),
            None => None,
        };
        Ok(Outputs { log, report })
    }

    /// Removes what was created, for a run that stops before it starts.
    pub(crate) fn abandon(self) {
        if let Some(stream) = self.log.and_then(|l| Arc::into_inner(l)?.into_inner().ok()) {
            stream.abandon();
        }
    }

    /// Puts the `--report-json` file in place now (see [`Staged::place_now`]): `mirror
    /// --user` does before dropping privileges, as the directory may be root's.
    pub(crate) fn place_report_now(&mut self) -> Result<(), OutputError> {
        self.report.as_mut().map_or(Ok(()), Staged::place_now)
    }

    /// What became of the `--log` stream (flushed now).
    pub(crate) fn log_summary(&self) -> Option<Summary> {
        let log = self.log.as_ref()?;
        let mut log = log.lock().ok()?;
        Some(log.finish())
    }

    /// Writes the `--report-json` file, then says on `err` which outputs failed (`log`: the
    /// log's summary); false if any did.
    pub(crate) fn commit_report(
        self,
        report: &crate::report::model::Report,
        log: Option<&Summary>,
        err: &mut dyn Write,
    ) -> anyhow::Result<bool> {
        let mut ok = true;
        if let Some(line) = log.and_then(|l| l.failure("log lines not written")) {
            writeln!(err, "shadowtap: error: {line}")?;
            ok = false;
        }
        if let Some(staged) = self.report {
            let text =
                crate::report::replay::to_json(report).context("encoding the report")? + "\n";
            if let Err(e) = staged.commit(text.as_bytes()) {
                writeln!(err, "shadowtap: error: {e}")?;
                ok = false;
            }
        }
        Ok(ok)
    }
}
