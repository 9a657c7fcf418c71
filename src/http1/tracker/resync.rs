//! Finding the next message start after a gap, a parse error or a mid-stream pickup: one
//! scan for both directions (H26, T13), bounded by the resync buffer and the memory budget.

use super::{Conn, Ctx, Mode, Side};
use crate::capture::Timestamp;
use crate::http1::head::{self, Parsed};
use crate::http1::limits::{HttpCounters, Limits};

/// What [`Side::resync`] found in the bytes offered.
enum Resync {
    /// A message start this many bytes into them: the direction is back to reading heads.
    At(usize),
    /// A message start inside bytes held from before: `bytes[from..]`, at stream offset
    /// `at`, are to be read again as the start of a message.
    Held {
        bytes: Vec<u8>,
        from: usize,
        at: u64,
    },
    /// None yet: the bytes are taken (the tail kept for the next look, within the limit).
    More,
    /// None within the detection budget: another protocol.
    NotHttp,
}

impl Side {
    /// Looks for the next message start (a line that `looks` right and whose head `parse`
    /// does not refuse) in what is held and `rest`, which starts at stream offset `at`.
    /// `detect` is the byte budget at the start of a connection (H26), if any.
    fn resync<T>(
        &mut self,
        rest: &[u8],
        at: u64,
        detect: Option<usize>,
        looks: fn(&[u8]) -> bool,
        parse: fn(&[u8], &Limits, &mut HttpCounters) -> Parsed<T>,
        cx: &mut Ctx<'_>,
    ) -> Resync {
        let max = cx.limits.max_resync_buffer;
        let (buffered, start) = resync_buffer(&mut self.buf, rest, at, max, cx);
        let found = {
            let bytes = if buffered { &self.buf[..] } else { rest };
            find_start(bytes, looks, |b| {
                !matches!(
                    parse(b, cx.limits, &mut HttpCounters::default()),
                    Parsed::Invalid
                )
            })
        };
        match found {
            Scan::Found(p) => {
                cx.counters.midstream_skipped_bytes += p as u64;
                self.mode = Mode::Head;
                if !buffered {
                    return Resync::At(p);
                }
                // The head starts inside bytes already taken: parse them from the start.
                let bytes = cx.budget.take(&mut self.buf);
                Resync::Held {
                    bytes,
                    from: p,
                    at: start + p as u64,
                }
            }
            Scan::NeedMore(keep) => {
                let len = if buffered { self.buf.len() } else { rest.len() };
                if detect.is_some_and(|b| start + len as u64 > b as u64) {
                    return Resync::NotHttp;
                }
                let drop = keep.max(len.saturating_sub(max));
                resync_keep(&mut self.buf, rest, buffered, drop, max, cx);
                Resync::More
            }
        }
    }
}

/// Where in `buf` a line satisfying `pred` starts, or where the unfinished last line starts.
enum Scan {
    Found(usize),
    NeedMore(usize),
}

fn scan_lines(buf: &[u8], pred: fn(&[u8]) -> bool) -> Scan {
    let mut start = 0;
    while let Some(rel) = memchr::memchr(b'\n', &buf[start..]) {
        let line = &buf[start..start + rel];
        // Control bytes in front of a message start are skipped: a mid-stream pickup that
        // began with a keep-alive probe has its one garbage byte there.
        let skip = line
            .iter()
            .take_while(|b| b.is_ascii_control() && **b != b'\r')
            .count();
        if pred(&line[skip..]) {
            return Scan::Found(start + skip);
        }
        start += rel + 1;
    }
    if buf.len() - start > 256 {
        // A "line" this long is not a request or status line: no need to keep it.
        return Scan::NeedMore(buf.len());
    }
    Scan::NeedMore(start)
}

/// The first message start in `buf`: a line that `looks` right and whose head `parses` (or
/// may, given more bytes). A line that looks right but does not parse is skipped, so the scan
/// always moves forward.
fn find_start(buf: &[u8], looks: fn(&[u8]) -> bool, parses: impl Fn(&[u8]) -> bool) -> Scan {
    let mut from = 0;
    loop {
        match scan_lines(&buf[from..], looks) {
            Scan::Found(p) => {
                let p = from + p;
                if parses(&buf[p..]) {
                    return Scan::Found(p);
                }
                from = p + memchr::memchr(b'\n', &buf[p..]).map_or(buf.len() - p, |n| n + 1);
            }
            Scan::NeedMore(keep) => return Scan::NeedMore(from + keep),
        }
    }
}

impl Conn {
    pub(super) fn resync_request(
        &mut self,
        rest: &[u8],
        at: u64,
        ack: Option<u64>,
        ts: Timestamp,
        cx: &mut Ctx<'_>,
    ) -> usize {
        let Mode::Resync { budget } = self.req.mode else {
            return 0;
        };
        let found = self
            .req
            .resync(rest, at, budget, head::is_request_line, head::request, cx);
        match found {
            Resync::At(p) => {
                cx.counters.resyncs += u64::from(self.any_request);
                // The caller goes on from the message start.
                return p;
            }
            Resync::Held { bytes, from, at } => {
                cx.counters.resyncs += u64::from(self.any_request);
                self.request_bytes(at, &bytes[from..], ack, ts, cx);
            }
            Resync::More => {}
            Resync::NotHttp => {
                cx.counters.non_http1_other += 1;
                self.stop(cx);
            }
        }
        rest.len()
    }

    pub(super) fn resync_response(
        &mut self,
        rest: &[u8],
        at: u64,
        ts: Timestamp,
        cx: &mut Ctx<'_>,
    ) -> usize {
        let found = self
            .resp
            .resync(rest, at, None, head::is_status_line, head::response, cx);
        match found {
            Resync::At(p) => {
                cx.counters.resyncs += 1;
                return p;
            }
            Resync::Held { bytes, from, at } => {
                cx.counters.resyncs += 1;
                self.response_bytes(at, &bytes[from..], ts, cx);
            }
            Resync::More | Resync::NotHttp => {}
        }
        rest.len()
    }
}

/// Before a resync scan: `rest` is appended to the bytes held from before, if any and if the
/// memory budget allows (else those are dropped). Returns whether the scan runs over the
/// buffer (otherwise over `rest` in place, with no copy) and the stream offset it starts at.
fn resync_buffer(
    buf: &mut Vec<u8>,
    rest: &[u8],
    at: u64,
    max: usize,
    cx: &mut Ctx<'_>,
) -> (bool, u64) {
    if buf.is_empty() {
        return (false, at);
    }
    let held = buf.len();
    if cx.budget.extend(buf, rest, max) {
        return (true, at - held as u64);
    }
    cx.counters.memcap_hits += 1;
    cx.counters.midstream_skipped_bytes += held as u64;
    cx.budget.free(buf);
    (false, at)
}

/// After a resync scan that found no message start: the first `drop` scanned bytes go, the
/// rest is kept for the next scan if the memory budget allows.
fn resync_keep(
    buf: &mut Vec<u8>,
    rest: &[u8],
    buffered: bool,
    drop: usize,
    max: usize,
    cx: &mut Ctx<'_>,
) {
    cx.counters.midstream_skipped_bytes += drop as u64;
    if buffered {
        buf.drain(..drop);
        return;
    }
    let tail = &rest[drop.min(rest.len())..];
    if !tail.is_empty() && !cx.budget.extend(buf, tail, max) {
        cx.counters.memcap_hits += 1;
        cx.counters.midstream_skipped_bytes += tail.len() as u64;
    }
}
