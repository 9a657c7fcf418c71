//! The one driver: frames → filter taps → decode → reassemble → track → exchange sink.
//!
//! Every command that turns frames into exchanges (`inspect`, `replay`, `capture --count`
//! and its read-back, the fuzz `pipeline` target, the stage benches) runs this chain, so
//! they decode, filter, count and warn alike:
//!
//! - a [`FrameSource`]: capture files merged by time ([`MergedReader`]) or one file;
//! - a [`Filter`]: `--bpf` on the frame, `--port` on the decoded segment, each counted;
//! - a [`Chain`]: the [`Decoder`], the [`Reassembler`] and a stream sink (the HTTP
//!   [`crate::http1::Tracker`], whose emit closure is the exchange sink), with an optional
//!   [`Front`] in front of the sink that sees every event on its way (replay's
//!   production-target watch, the fuzz target's work count);
//! - [`Notes`]: the warnings and errors of the files, the decoder and the filter,
//!   collected once and printed the same way by every command.
//!
//! Everything is generic and static: the driver compiles to the loop written by hand.

use std::io::{Read, Write};

use crate::capture::filter::{BpfFilter, FilterError};
use crate::capture::{CaptureReader, Frame, MergedReader};
use crate::reassembly::{Reassembler, StreamSink};
use crate::wire::{Decoder, Segment};

/// Where frames come from, in the order they are to be processed.
pub trait FrameSource {
    /// The next frame, or None at the end (or at an error the source keeps for later).
    fn next(&mut self) -> Option<Frame<'_>>;
}

impl<R: Read> FrameSource for MergedReader<R> {
    #[inline]
    fn next(&mut self) -> Option<Frame<'_>> {
        self.next_frame().map(|(_, frame)| frame)
    }
}

/// One capture file on its own: it ends at its first read error.
impl<R: Read> FrameSource for CaptureReader<R> {
    #[inline]
    fn next(&mut self) -> Option<Frame<'_>> {
        self.next_frame().ok().flatten()
    }
}

/// What the user asked to keep: `--port N` (repeatable) and `--bpf EXPR`.
#[derive(Clone, Debug, Default)]
pub struct FilterSpec {
    /// Sorted and without duplicates; empty keeps every port.
    pub ports: Vec<u16>,
    pub bpf: Option<String>,
}

impl FilterSpec {
    /// The spec for these flags (the ports are sorted and deduplicated here).
    pub fn new(mut ports: Vec<u16>, bpf: Option<String>) -> FilterSpec {
        ports.sort_unstable();
        ports.dedup();
        FilterSpec { ports, bpf }
    }
}

/// The filter taps: frames not matching `--bpf` and segments on neither `--port` are not
/// pushed, and are counted.
#[derive(Default)]
pub struct Filter {
    bpf: Option<BpfFilter>,
    ports: Vec<u16>,
    /// Frames the BPF expression did not match.
    pub bpf_filtered: u64,
    /// Decoded segments with neither port in `--port`.
    pub port_filtered: u64,
}

impl Filter {
    /// Compiles the BPF expression (a typo is an error before any frame is read).
    pub fn new(spec: &FilterSpec) -> Result<Filter, FilterError> {
        Ok(Filter {
            bpf: spec.bpf.as_deref().map(BpfFilter::new).transpose()?,
            ports: spec.ports.clone(),
            ..Filter::default()
        })
    }

    /// A filter that keeps everything.
    pub fn none() -> Filter {
        Filter::default()
    }

    #[inline]
    fn keeps_frame(&mut self, frame: &Frame<'_>) -> bool {
        if let Some(f) = self.bpf.as_mut() {
            if !f.matches(frame) {
                self.bpf_filtered += 1;
                return false;
            }
        }
        true
    }

    #[inline]
    fn keeps_segment(&mut self, segment: &Segment<'_>) -> bool {
        if !self.ports.is_empty()
            && self.ports.binary_search(&segment.src.port()).is_err()
            && self.ports.binary_search(&segment.dst.port()).is_err()
        {
            self.port_filtered += 1;
            return false;
        }
        true
    }

    /// One line per link type the BPF expression could not be compiled for.
    fn warnings(&self) -> impl Iterator<Item = String> + '_ {
        self.bpf.iter().flat_map(|f| {
            f.failed.iter().map(|(link, reason)| {
                format!("BPF filter does not apply to link type {link}: {reason}")
            })
        })
    }
}

/// What stands between the reassembler and the stream sink. [`Direct`] is nothing; an
/// adaptor wraps the sink for each push (replay's production-target watch, `Opens`, is one).
pub trait Front {
    /// Pushes `segment` into `reassembler`, its events going to `sink` (through the adaptor).
    fn push<K: StreamSink>(
        &mut self,
        reassembler: &mut Reassembler,
        segment: &Segment<'_>,
        sink: &mut K,
    );

    /// Flushes `reassembler` at the end of the input: by default straight into `sink`.
    fn finish<K: StreamSink>(&mut self, reassembler: &mut Reassembler, sink: &mut K) {
        reassembler.finish(sink);
    }
}

/// No adaptor: events go straight to the sink.
pub struct Direct;

impl Front for Direct {
    #[inline]
    fn push<K: StreamSink>(
        &mut self,
        reassembler: &mut Reassembler,
        segment: &Segment<'_>,
        sink: &mut K,
    ) {
        reassembler.push(segment, sink);
    }
}

/// The decode → reassemble → track chain, owning each stage.
pub struct Chain<K, P = Direct> {
    decoder: Decoder,
    reassembler: Reassembler,
    sink: K,
    front: P,
}

impl<K: StreamSink> Chain<K, Direct> {
    /// The chain into `sink` (the HTTP tracker, usually) with these stage limits.
    pub fn new(
        wire: crate::wire::Limits,
        reassembly: crate::reassembly::Limits,
        sink: K,
    ) -> Chain<K, Direct> {
        Chain::with_front(wire, reassembly, sink, Direct)
    }
}

impl<K: StreamSink, P: Front> Chain<K, P> {
    /// The chain with `front` between the reassembler and `sink`.
    pub fn with_front(
        wire: crate::wire::Limits,
        reassembly: crate::reassembly::Limits,
        sink: K,
        front: P,
    ) -> Chain<K, P> {
        Chain {
            decoder: Decoder::new(wire),
            reassembler: Reassembler::new(reassembly),
            sink,
            front,
        }
    }

    /// Decodes `frame` and pushes its segment, if it has one.
    #[inline]
    pub fn push(&mut self, frame: &Frame<'_>) {
        if let Some(segment) = self.decoder.decode(frame) {
            self.front
                .push(&mut self.reassembler, &segment, &mut self.sink);
        }
    }

    /// [`Chain::push`], for what `filter` keeps.
    #[inline]
    pub fn push_filtered(&mut self, frame: &Frame<'_>, filter: &mut Filter) {
        if !filter.keeps_frame(frame) {
            return;
        }
        let Some(segment) = self.decoder.decode(frame) else {
            return;
        };
        if filter.keeps_segment(&segment) {
            self.front
                .push(&mut self.reassembler, &segment, &mut self.sink);
        }
    }

    /// Pushes a segment that did not come from a frame (the fuzz target's scripts).
    pub fn push_segment(&mut self, segment: &Segment<'_>) {
        self.front
            .push(&mut self.reassembler, segment, &mut self.sink);
    }

    /// The end of the input: every flow still open is flushed and closed.
    pub fn finish(&mut self) {
        self.front.finish(&mut self.reassembler, &mut self.sink);
    }

    pub fn decoder(&self) -> &Decoder {
        &self.decoder
    }

    pub fn reassembler(&self) -> &Reassembler {
        &self.reassembler
    }

    pub fn sink(&self) -> &K {
        &self.sink
    }

    pub fn front(&self) -> &P {
        &self.front
    }

    /// The stream sink, the chain given up (the tracker's closure releases its borrows).
    pub fn into_sink(self) -> K {
        self.sink
    }
}

/// Pushes every frame of `source` through `filter` into `chain` until the source ends or
/// `each` (called on every frame before it is pushed) says to stop. The chain is not
/// finished: the caller does that once every source is read.
#[inline]
pub fn drive<S, K, P>(
    source: &mut S,
    filter: &mut Filter,
    chain: &mut Chain<K, P>,
    mut each: impl FnMut(&Frame<'_>) -> bool,
) where
    S: FrameSource,
    K: StreamSink,
    P: Front,
{
    while let Some(frame) = source.next() {
        if !each(&frame) {
            break;
        }
        chain.push_filtered(&frame, filter);
    }
}

/// What a run over capture files has to say, collected once so that every command prints
/// the same lines: warnings (a file cut short, frames of a link type not supported, a BPF
/// expression that does not apply to a link type) and errors (a file that failed while read).
#[derive(Debug, Default)]
pub struct Notes {
    pub warnings: Vec<String>,
    pub errors: Vec<String>,
}

impl Notes {
    /// Takes the warnings and errors of the files, the decoder and the filter.
    pub fn collect<R: Read, K: StreamSink, P: Front>(
        frames: &mut MergedReader<R>,
        chain: &mut Chain<K, P>,
        filter: &Filter,
    ) -> Notes {
        let mut warnings = frames.take_warnings();
        warnings.extend(chain.decoder.take_warnings());
        warnings.extend(filter.warnings());
        let errors = frames.errors().iter().map(|(_, e)| e.to_string()).collect();
        Notes { warnings, errors }
    }

    /// `shadowtap: warning: …`, one line each.
    pub fn write_warnings(&self, err: &mut dyn Write) -> std::io::Result<()> {
        for w in &self.warnings {
            writeln!(err, "shadowtap: warning: {w}")?;
        }
        Ok(())
    }

    /// `shadowtap: error: …`, one line each.
    pub fn write_errors(&self, err: &mut dyn Write) -> std::io::Result<()> {
        for e in &self.errors {
            writeln!(err, "shadowtap: error: {e}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http1::Tracker;
    use crate::settings::Limits;

    fn files(names: &[&str]) -> MergedReader<Box<dyn std::io::Read + Send>> {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/");
        let readers = names
            .iter()
            .map(|n| CaptureReader::open(std::path::Path::new(&format!("{dir}{n}"))).unwrap())
            .collect();
        MergedReader::new(readers)
    }

    /// Exchanges of `names` through `filter`, with the filter's counts and the notes.
    fn run(names: &[&str], spec: &FilterSpec) -> (u64, Filter, Notes) {
        let limits = Limits::default();
        let mut frames = files(names);
        let mut filter = Filter::new(spec).unwrap();
        let mut exchanges = 0u64;
        let tracker = Tracker::new(limits.http1, |_| exchanges += 1);
        let mut chain = Chain::new(limits.wire, limits.reassembly, tracker);
        drive(&mut frames, &mut filter, &mut chain, |_| true);
        chain.finish();
        let notes = Notes::collect(&mut frames, &mut chain, &filter);
        drop(chain);
        (exchanges, filter, notes)
    }

    #[test]
    fn filters_leave_out_what_they_do_not_keep_and_count_it() {
        let all = run(&["keepalive-ethernet.pcap"], &FilterSpec::default());
        assert!(all.0 > 0);
        assert_eq!((all.1.port_filtered, all.1.bpf_filtered), (0, 0));
        let on_80 = run(
            &["keepalive-ethernet.pcap"],
            &FilterSpec::new(vec![80], None),
        );
        assert_eq!(on_80.0, all.0);
        let other = run(
            &["keepalive-ethernet.pcap"],
            &FilterSpec::new(vec![8080, 8080], None),
        );
        assert_eq!(other.0, 0);
        assert!(other.1.port_filtered > 0);
        let bpf = FilterSpec::new(Vec::new(), Some("tcp port 8080".into()));
        let other = run(&["keepalive-ethernet.pcap"], &bpf);
        assert_eq!(other.0, 0);
        assert!(other.1.bpf_filtered > 0);
        assert_eq!(other.1.port_filtered, 0);
    }

    #[test]
    fn notes_hold_the_warnings_of_the_files() {
        let (_, _, notes) = run(&["corrupt-truncated-tail.pcap"], &FilterSpec::default());
        assert!(
            notes
                .warnings
                .iter()
                .any(|w| w.contains("capture cut short")),
            "{notes:?}"
        );
        let mut err = Vec::new();
        notes.write_warnings(&mut err).unwrap();
        assert!(String::from_utf8_lossy(&err).starts_with("shadowtap: warning: "));
    }

    #[test]
    fn the_frame_hook_stops_the_drive_before_the_frame_is_pushed() {
        let limits = Limits::default();
        let mut frames = files(&["keepalive-ethernet.pcap"]);
        let tracker = Tracker::new(limits.http1, |_| {});
        let mut chain = Chain::new(limits.wire, limits.reassembly, tracker);
        let mut seen = 0;
        drive(&mut frames, &mut Filter::none(), &mut chain, |_| {
            seen += 1;
            seen <= 3
        });
        assert_eq!(seen, 4);
        assert_eq!(chain.decoder().counters().packets, 3);
    }
}
