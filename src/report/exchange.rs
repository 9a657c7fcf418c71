//! One exchange as a line: the JSON object of DESIGN.md "inspect --format jsonl", or a row of
//! the readable table.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::{self, Write};

use crate::capture::Timestamp;
use crate::http1::Exchange;
use crate::redact;

/// Bytes as text: valid UTF-8 kept, every other byte written as the four characters `\xNN`
/// (DESIGN.md), so a target is shown exactly as sent.
pub fn escape_bytes(bytes: &[u8]) -> Cow<'_, str> {
    if let Ok(s) = std::str::from_utf8(bytes) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(bytes.len() + 8);
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    Cow::Owned(out)
}

fn json_str(out: &mut Vec<u8>, s: &str) {
    // serde_json's string escaping is exact and fast; writing to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

fn json_opt_i64(out: &mut Vec<u8>, v: Option<i64>) {
    match v {
        Some(v) => {
            let _ = write!(out, "{v}");
        }
        None => out.extend_from_slice(b"null"),
    }
}

/// Appends one exchange as a JSON line (with the trailing newline) to `out`.
///
/// `ts` is written with exactly six decimals from the integer nanoseconds, never through a
/// float, so it round-trips to the microsecond.
pub fn write_jsonl(out: &mut Vec<u8>, ex: &Exchange, redact_credentials: bool) {
    let req = &ex.request;
    let target: Cow<'_, [u8]> = if redact_credentials {
        redact::redact_target(&req.target)
    } else {
        Cow::Borrowed(&req.target)
    };
    let _ = write!(out, "{{\"ts\":{}", req.first_ts);
    out.extend_from_slice(b",\"client\":");
    json_str(out, &ex.client.to_string());
    out.extend_from_slice(b",\"server\":");
    json_str(out, &ex.server.to_string());
    out.extend_from_slice(b",\"method\":");
    json_str(out, &req.method);
    out.extend_from_slice(b",\"uri\":");
    json_str(out, &escape_bytes(&target));
    let _ = write!(out, ",\"version\":\"HTTP/1.{}\"", req.version);
    out.extend_from_slice(b",\"host\":");
    match req.host() {
        Some(h) => json_str(out, &escape_bytes(h)),
        None => out.extend_from_slice(b"null"),
    }
    let _ = write!(out, ",\"req_body_len\":{}", req.body_len);
    let resp = ex.response.as_ref();
    out.extend_from_slice(b",\"status\":");
    json_opt_i64(out, resp.map(|r| i64::from(r.status)));
    out.extend_from_slice(b",\"resp_body_len\":");
    json_opt_i64(out, resp.map(|r| r.body_len as i64));
    out.extend_from_slice(b",\"ttfb_us\":");
    json_opt_i64(out, ex.ttfb_us());
    out.extend_from_slice(b",\"total_us\":");
    json_opt_i64(out, ex.total_us());
    out.extend_from_slice(b",\"flags\":[");
    for (i, name) in ex.flags.names().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let _ = write!(out, "\"{name}\"");
    }
    out.extend_from_slice(b"]}\n");
}

/// The header of the text table.
pub fn write_text_header(w: &mut (impl Write + ?Sized)) -> io::Result<()> {
    writeln!(
        w,
        "{:<26}  {:<45}  {:>6}  {:>9}  {:>9}  REQUEST",
        "TIME (UTC)", "CLIENT -> SERVER", "STATUS", "TTFB", "TOTAL"
    )
}

/// Appends one exchange as a row of the text table.
pub fn write_text_row(out: &mut Vec<u8>, ex: &Exchange, redact_credentials: bool) {
    let req = &ex.request;
    let target: Cow<'_, [u8]> = if redact_credentials {
        redact::redact_target(&req.target)
    } else {
        Cow::Borrowed(&req.target)
    };
    let peers = format!("{} -> {}", ex.client, ex.server);
    let status = ex
        .response
        .as_ref()
        .map_or_else(|| "-".to_string(), |r| r.status.to_string());
    let _ = write!(
        out,
        "{:<26}  {:<45}  {:>6}  {:>9}  {:>9}  {} {}",
        utc(req.first_ts),
        peers,
        status,
        duration(ex.ttfb_us()),
        duration(ex.total_us()),
        req.method,
        escape_bytes(&target),
    );
    if !ex.flags.is_empty() {
        out.extend_from_slice(b"  [");
        for (i, name) in ex.flags.names().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(name.as_bytes());
        }
        out.push(b']');
    }
    out.push(b'\n');
}

/// A duration in microseconds, human-scaled: `850us`, `12.3ms`, `4.56s`.
pub fn duration(us: Option<i64>) -> String {
    match us {
        None => "-".to_string(),
        Some(us) if us.abs() < 1_000 => format!("{us}us"),
        Some(us) if us.abs() < 1_000_000 => format!("{:.1}ms", us as f64 / 1e3),
        Some(us) => format!("{:.2}s", us as f64 / 1e6),
    }
}

/// `YYYY-MM-DD HH:MM:SS.ffffff` in UTC.
pub fn utc(ts: Timestamp) -> String {
    let nanos = ts.nanos();
    let secs = nanos.div_euclid(1_000_000_000);
    let micros = nanos.rem_euclid(1_000_000_000) / 1000;
    let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{micros:06}",
        sod / 3600,
        sod / 60 % 60,
        sod % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_utf8_is_written_as_backslash_x() {
        assert_eq!(escape_bytes(b"/a\xffb\xc3"), "/a\\xffb\\xc3");
        assert_eq!(escape_bytes("/caf\u{e9}".as_bytes()), "/caf\u{e9}");
    }

    #[test]
    fn utc_formats_known_instants() {
        assert_eq!(utc(Timestamp(0)), "1970-01-01 00:00:00.000000");
        assert_eq!(
            utc(Timestamp(1_362_692_526_939_527_000)),
            "2013-03-07 21:42:06.939527"
        );
        assert_eq!(
            utc(Timestamp(951_782_400_000_000_000)),
            "2000-02-29 00:00:00.000000"
        );
    }

    #[test]
    fn durations_are_human_scaled() {
        assert_eq!(duration(Some(850)), "850us");
        assert_eq!(duration(Some(12_345)), "12.3ms");
        assert_eq!(duration(Some(4_560_000)), "4.56s");
        assert_eq!(duration(None), "-");
    }
}
