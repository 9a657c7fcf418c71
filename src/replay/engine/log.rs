//! The `--log` line written for each replayed exchange.

use std::sync::{Arc, Mutex};

use serde_json::json;

use crate::http1::Exchange;
use crate::output::Stream;
use crate::redact::redact_target;
use crate::replay::client::{Answer, Failure};

/// The `--log` file: one JSON line per replayed exchange, written as exchanges complete. A
/// failed write stops the log, not the replay; the stream counts the lines it could not write.
pub type SharedLog = Arc<Mutex<Stream>>;

/// `None` without `--log`, so that no request takes the shared lock for nothing.
pub(super) type Log = Option<SharedLog>;

pub(super) fn log_line(log: &Log, ex: &Exchange, route: &str, answer: &Result<Answer, Failure>) {
    let Some(log) = log.as_ref() else {
        return;
    };
    // What replay writes is redacted (DESIGN.md "Redaction").
    let uri = redact_target(&ex.request.target);
    let line = json!({
        "ts": ex.request.first_ts.to_string().parse::<f64>().unwrap_or(0.0),
        "method": ex.request.method,
        "uri": String::from_utf8_lossy(&uri),
        "route": route,
        "production": {
            "status": ex.response.as_ref().map(|r| r.status),
            "ttfb_us": ex.ttfb_us(),
            "total_us": ex.total_us(),
        },
        // Anomalies of the exchange: `body_cut`, the shadow's body was cut at the drain cap.
        "flags": match answer {
            Ok(a) if a.body_cut => vec!["body_cut"],
            _ => Vec::new(),
        },
        "shadow": match answer {
            Ok(a) => json!({"status": a.status, "ttfb_us": a.ttfb.as_micros() as u64, "total_us": a.total.as_micros() as u64, "error": null}),
            Err(f) => json!({"status": null, "ttfb_us": null, "total_us": null, "error": f.name()}),
        },
    });
    let line = line.to_string();
    if let Ok(mut log) = log.lock() {
        log.line(line.as_bytes());
    }
}
