//! [`CaptureReader`]: one capture file (classic pcap or pcapng, detected from its first bytes)
//! as a stream of borrowed [`Frame`]s.
//!
//! Owns: format detection and open errors (F01/F09), the record-length policy (F03/F04),
//! truncated tails (F02), per-file counters. Does not own: the format details (`pcap`,
//! `pcapng`), merging files (`merge`).

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use super::buffer::ReadBuffer;
use super::counters::{CaptureCounters, Limits};
use super::endian::Endian;
use super::error::{OpenError, ReadError};
use super::pcap::{self, PcapHeader};
use super::pcapng::{self, Outcome, Pcapng};
use super::{Frame, LinkType, Timestamp};

/// Largest classic pcap record header (the "modified" format's).
const MAX_RECORD_HEADER_LEN: usize = 24;
/// How many leading bytes an open error shows in hex.
const MAGIC_SHOWN: usize = 8;
const PCAPNG_MAGIC: [u8; 4] = pcapng::BT_SHB.to_le_bytes();

/// Compressed formats recognised by their magic so the error can say "decompress it" (F09).
const COMPRESSED_MAGICS: [(&[u8], &str); 6] = [
    (&[0x1f, 0x8b], "gzip"),
    (&[0x28, 0xb5, 0x2f, 0xfd], "zstd"),
    (b"BZh", "bzip2"),
    (&[0xfd, b'7', b'z', b'X', b'Z', 0x00], "xz"),
    (&[0x04, 0x22, 0x4d, 0x18], "lz4"),
    (b"PK\x03\x04", "zip"),
];

/// The detected file format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Classic pcap; `nanos` for the `a1b23c4d` magic.
    Pcap {
        endian: Endian,
        nanos: bool,
    },
    Pcapng,
}

enum Kind {
    Pcap(PcapHeader),
    Pcapng(Pcapng),
}

/// Where the current frame lies in the buffer.
#[derive(Clone, Copy, Debug)]
struct Current {
    ts: Timestamp,
    link: LinkType,
    start: usize,
    len: usize,
    orig_len: u32,
}

/// Reads one capture file. Frames borrow the reader's buffer (one buffer reused for the whole
/// file, [`Limits::read_buffer`] bytes, growing up to the largest allowed record or block).
///
/// After a [`ReadError`] or the end of the file the reader is finished: `advance` returns
/// `Ok(false)` from then on and the buffer is freed.
pub struct CaptureReader<R> {
    name: String,
    buf: ReadBuffer<R>,
    kind: Kind,
    limits: Limits,
    counters: CaptureCounters,
    warnings: Vec<String>,
    current: Option<Current>,
    last_ts: Option<Timestamp>,
    /// Records (pcap) or blocks (pcapng) started, for error messages.
    seen: u64,
    finished: bool,
}

impl CaptureReader<Box<dyn Read + Send>> {
    /// Opens `path` (`-` is standard input) with the default limits.
    pub fn open(path: &Path) -> Result<Self, OpenError> {
        Self::open_with_limits(path, Limits::default())
    }

    /// Opens `path` (`-` is standard input).
    pub fn open_with_limits(path: &Path, limits: Limits) -> Result<Self, OpenError> {
        let name = path.display().to_string();
        let input: Box<dyn Read + Send> = if path == Path::new("-") {
            Box::new(io::stdin())
        } else {
            match File::open(path) {
                Ok(f) => Box::new(f),
                Err(source) => return Err(OpenError::Io { name, source }),
            }
        };
        CaptureReader::with_limits(input, name, limits)
    }
}

impl<R: Read> CaptureReader<R> {
    /// Detects the format from the first bytes and reads the file header (F01, F09).
    pub fn new(reader: R, name: String) -> Result<Self, OpenError> {
        Self::with_limits(reader, name, Limits::default())
    }

    pub fn with_limits(reader: R, name: String, limits: Limits) -> Result<Self, OpenError> {
        let cap = (limits.max_record as usize)
            .saturating_add(MAX_RECORD_HEADER_LEN)
            .max(limits.max_block as usize);
        let mut buf = ReadBuffer::new(reader, limits.read_buffer, cap);
        let mut counters = CaptureCounters {
            files: 1,
            ..CaptureCounters::default()
        };
        let kind = open_kind(&mut buf, &name, &limits, &mut counters)?;
        counters.buffer_grow = buf.grows;
        // The first section header, read at open, is pcapng block 1.
        let seen = u64::from(matches!(kind, Kind::Pcapng(_)));
        Ok(CaptureReader {
            name,
            buf,
            kind,
            limits,
            counters,
            warnings: Vec::new(),
            current: None,
            last_ts: None,
            seen,
            finished: false,
        })
    }

    /// The name given at open (the path), used in every message.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn format(&self) -> Format {
        match &self.kind {
            Kind::Pcap(h) => Format::Pcap {
                endian: h.endian,
                nanos: h.nanos,
            },
            Kind::Pcapng(_) => Format::Pcapng,
        }
    }

    pub fn counters(&self) -> &CaptureCounters {
        &self.counters
    }

    /// Warnings so far (at most one: the F02 truncated tail).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    pub fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }

    /// True once the file has ended, been cut short, or failed.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Reads the next frame: `Ok(None)` at the end of the file, including a truncated tail
    /// (F02, a warning, not an error).
    #[inline]
    pub fn next_frame(&mut self) -> Result<Option<Frame<'_>>, ReadError> {
        if self.advance()? {
            Ok(self.current())
        } else {
            Ok(None)
        }
    }

    /// Moves to the next frame, which [`CaptureReader::current`] then shows without consuming
    /// it (a merger peeks at its timestamp). `Ok(false)` at the end.
    pub fn advance(&mut self) -> Result<bool, ReadError> {
        self.current = None;
        if self.finished {
            return Ok(false);
        }
        let step = match &self.kind {
            Kind::Pcap(h) => {
                let h = *h;
                self.pcap_step(h)
            }
            Kind::Pcapng(_) => self.pcapng_step(),
        };
        self.counters.buffer_grow = self.buf.grows;
        self.counters.partial_reads = self.buf.partial_reads;
        match step {
            Ok(Some(cur)) => {
                if self.last_ts.is_some_and(|prev| cur.ts < prev) {
                    self.counters.ts_backwards += 1;
                }
                self.last_ts = Some(cur.ts);
                self.counters.records += 1;
                self.counters.bytes += cur.len as u64;
                self.current = Some(cur);
                Ok(true)
            }
            Ok(None) => {
                self.finish();
                Ok(false)
            }
            Err(e) => {
                self.finish();
                Err(e)
            }
        }
    }

    /// The frame [`CaptureReader::advance`] moved to, until the next `advance`.
    #[inline]
    pub fn current(&self) -> Option<Frame<'_>> {
        let cur = self.current?;
        Some(Frame {
            ts: cur.ts,
            link: cur.link,
            data: self.buf.slice(cur.start, cur.len)?,
            orig_len: cur.orig_len,
        })
    }

    fn finish(&mut self) {
        self.finished = true;
        self.buf.release();
    }

    fn io_error(&self, source: io::Error) -> ReadError {
        ReadError::Io {
            name: self.name.clone(),
            offset: self.buf.offset(),
            source,
        }
    }

    /// F02: the last record is incomplete; everything before it was handed out.
    fn truncated_tail(&mut self, offset: u64) {
        self.counters.truncated_tail += 1;
        self.warnings.push(format!(
            "{}: capture cut short at byte {offset} (last record incomplete); everything before it was read",
            self.name
        ));
    }

    /// One classic pcap record. `Ok(None)` at the end (clean or truncated).
    #[inline]
    fn pcap_step(&mut self, h: PcapHeader) -> Result<Option<Current>, ReadError> {
        let offset = self.buf.offset();
        let hl = h.record_header_len;
        let whole_header = self.buf.ensure(hl).map_err(|e| self.io_error(e))?;
        let rec = match h.record(self.buf.available()) {
            Some(rec) if whole_header => rec,
            _ => {
                if !self.buf.available().is_empty() {
                    self.truncated_tail(offset);
                }
                return Ok(None);
            }
        };
        self.seen += 1;
        if rec.caplen > self.limits.max_record {
            // F03: never allocate it; the file is corrupt from here on.
            self.counters.record_invalid += 1;
            return Err(ReadError::RecordInvalid {
                name: self.name.clone(),
                record: self.seen,
                offset,
                caplen: rec.caplen,
                limit: self.limits.max_record,
            });
        }
        let len = rec.caplen as usize;
        if !self.buf.ensure(hl + len).map_err(|e| self.io_error(e))? {
            self.truncated_tail(offset);
            return Ok(None);
        }
        let start = self.buf.start() + hl;
        self.buf.consume(hl + len);
        if rec.caplen > h.snaplen {
            // F03: libpcap accepts these up to its maximum; so do we, whole.
            self.counters.caplen_over_snaplen += 1;
        }
        Ok(Some(Current {
            ts: rec.ts,
            link: h.link,
            start,
            len,
            orig_len: self.normalised_orig_len(rec.caplen, rec.orig_len),
        }))
    }

    /// F04: a frame is never longer on the wire than captured; old files swapped the fields.
    #[inline]
    fn normalised_orig_len(&mut self, caplen: u32, orig_len: u32) -> u32 {
        if orig_len < caplen || orig_len == 0 {
            self.counters.len_anomaly += 1;
            caplen
        } else {
            orig_len
        }
    }

    /// pcapng blocks up to the next packet. `Ok(None)` at the end (clean or truncated).
    fn pcapng_step(&mut self) -> Result<Option<Current>, ReadError> {
        loop {
            let offset = self.buf.offset();
            if !self
                .buf
                .ensure(pcapng::MIN_BLOCK_LEN)
                .map_err(|e| self.io_error(e))?
            {
                if !self.buf.available().is_empty() {
                    self.truncated_tail(offset);
                }
                return Ok(None);
            }
            self.seen += 1;
            let Kind::Pcapng(ng) = &mut self.kind else {
                return Ok(None);
            };
            let parsed = match ng.block_len(self.buf.available()) {
                Ok(len) => {
                    if !self.buf.ensure(len).map_err(|e| self.io_error(e))? {
                        self.truncated_tail(offset);
                        return Ok(None);
                    }
                    let Kind::Pcapng(ng) = &mut self.kind else {
                        return Ok(None);
                    };
                    let start = self.buf.start();
                    let block = self.buf.available().get(..len).unwrap_or(&[]);
                    let parsed = ng.parse(block, &mut self.counters);
                    self.buf.consume(len);
                    parsed.map(|outcome| (outcome, start))
                }
                Err(problem) => Err(problem),
            };
            match parsed {
                Ok((
                    Outcome::Packet {
                        ts,
                        link,
                        data_off,
                        caplen,
                        orig_len,
                    },
                    start,
                )) => {
                    return Ok(Some(Current {
                        ts,
                        link,
                        start: start + data_off,
                        len: caplen as usize,
                        orig_len: self.normalised_orig_len(caplen, orig_len),
                    }));
                }
                Ok((Outcome::Other, _)) => {}
                Err(problem) => {
                    self.counters.block_invalid += 1;
                    return Err(ReadError::BlockInvalid {
                        name: self.name.clone(),
                        block: self.seen,
                        offset,
                        problem,
                    });
                }
            }
        }
    }
}

/// Recognises the format and consumes the file header (pcap) or first section header (pcapng).
fn open_kind<R: Read>(
    buf: &mut ReadBuffer<R>,
    name: &str,
    limits: &Limits,
    counters: &mut CaptureCounters,
) -> Result<Kind, OpenError> {
    let io = |source| OpenError::Io {
        name: name.to_string(),
        source,
    };
    let too_short = |format, len| OpenError::TooShort {
        name: name.to_string(),
        format,
        len,
    };
    buf.ensure(pcap::FILE_HEADER_LEN).map_err(io)?;
    let head = buf.available();
    if head.is_empty() {
        return Err(OpenError::Empty {
            name: name.to_string(),
        });
    }
    if pcap::detect(head).is_some() {
        let header = pcap::parse_header(head).ok_or(too_short("pcap", head.len()))?;
        buf.consume(pcap::FILE_HEADER_LEN);
        counters.interfaces = 1;
        return Ok(Kind::Pcap(header));
    }
    if head.starts_with(&PCAPNG_MAGIC) {
        let bad = |problem: super::error::BlockProblem| OpenError::BadHeader {
            name: name.to_string(),
            reason: format!("pcapng section header: {problem}"),
        };
        if head.len() < pcapng::MIN_BLOCK_LEN {
            return Err(too_short("pcapng", head.len()));
        }
        let mut ng = Pcapng::new(limits);
        let len = ng.block_len(head).map_err(bad)?;
        if !buf.ensure(len).map_err(io)? {
            return Err(too_short("pcapng", buf.available().len()));
        }
        let block = buf.available().get(..len).unwrap_or(&[]);
        ng.parse(block, counters).map_err(bad)?;
        buf.consume(len);
        return Ok(Kind::Pcapng(ng));
    }
    Err(unrecognised(name, head))
}

/// The open error for bytes that are not a capture: compressed, text, or unknown (F01/F09).
fn unrecognised(name: &str, head: &[u8]) -> OpenError {
    let name = name.to_string();
    if let Some((_, kind)) = COMPRESSED_MAGICS.iter().find(|(m, _)| head.starts_with(m)) {
        return OpenError::Compressed { name, kind };
    }
    if head.len() < 4 {
        return OpenError::TooShort {
            name,
            format: "capture",
            len: head.len(),
        };
    }
    let shown = head.get(..MAGIC_SHOWN).unwrap_or(head);
    let magic = shown
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ");
    let text = head
        .iter()
        .all(|&b| b.is_ascii_graphic() || b.is_ascii_whitespace());
    OpenError::NotCapture {
        name,
        what: if text {
            "looks like text"
        } else {
            "unknown magic"
        },
        magic,
    }
}
