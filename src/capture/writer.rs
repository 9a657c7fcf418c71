//! [`PcapWriter`]: classic pcap output (nanosecond magic `a1b23c4d`, little endian, snap
//! length 262144), for `capture`, `--save-pcap` and test fixtures.
//!
//! Owns: the file and record header layout. Does not own: where the bytes go (any `Write`;
//! files are an [`crate::output::Stream`], which creates them safely and writes records whole).

use std::io::{self, Write};
use std::path::Path;

use crate::output::{OutputError, Stream};

use super::pcap::MAGIC_NANOS;
use super::{LinkType, Timestamp};

const VERSION_MAJOR: u16 = 2;
const VERSION_MINOR: u16 = 4;
/// libpcap's `MAXIMUM_SNAPLEN`; records longer than this are refused, since readers
/// (ours included, F03) reject them.
pub const WRITER_SNAPLEN: u32 = 262_144;
const NANOS_PER_SEC: i64 = 1_000_000_000;

/// Writes a classic pcap stream with one link type.
pub struct PcapWriter<W: Write> {
    out: W,
}

impl<W: Write> PcapWriter<W> {
    /// Writes the file header.
    pub fn new(mut out: W, link: LinkType) -> io::Result<Self> {
        let mut h = [0u8; 24];
        let fields: [&[u8]; 7] = [
            &MAGIC_NANOS.to_le_bytes(),
            &VERSION_MAJOR.to_le_bytes(),
            &VERSION_MINOR.to_le_bytes(),
            &0i32.to_le_bytes(), // thiszone: timestamps are UTC
            &0u32.to_le_bytes(), // sigfigs
            &WRITER_SNAPLEN.to_le_bytes(),
            &link.0.to_le_bytes(),
        ];
        let mut at = 0;
        for f in fields {
            if let Some(dst) = h.get_mut(at..at + f.len()) {
                dst.copy_from_slice(f);
            }
            at += f.len();
        }
        out.write_all(&h)?;
        Ok(PcapWriter { out })
    }

    /// Writes one record. `orig_len` below `data.len()` is written as `data.len()`. Refuses
    /// (`InvalidInput`) timestamps before 1970 or after 2106 and data over the snap length.
    pub fn write(&mut self, ts: Timestamp, data: &[u8], orig_len: u32) -> io::Result<()> {
        let invalid = |what: &str| io::Error::new(io::ErrorKind::InvalidInput, what.to_string());
        let secs = u32::try_from(ts.0.div_euclid(NANOS_PER_SEC))
            .map_err(|_| invalid("timestamp outside the pcap range (1970..2106)"))?;
        let nanos = ts.0.rem_euclid(NANOS_PER_SEC) as u32;
        let caplen = u32::try_from(data.len())
            .ok()
            .filter(|&l| l <= WRITER_SNAPLEN)
            .ok_or_else(|| invalid("frame longer than the snap length 262144"))?;
        let mut h = [0u8; 16];
        for (i, v) in [secs, nanos, caplen, orig_len.max(caplen)]
            .into_iter()
            .enumerate()
        {
            if let Some(dst) = h.get_mut(i * 4..i * 4 + 4) {
                dst.copy_from_slice(&v.to_le_bytes());
            }
        }
        self.out.write_all(&h)?;
        self.out.write_all(data)
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

impl PcapWriter<Stream> {
    /// A pcap file at `path`, created as a new 0600 file ([`crate::output::create_new`]; `force`
    /// replaces an existing one).
    pub fn create(path: &Path, link: LinkType, force: bool) -> Result<Self, OutputError> {
        let stream = Stream::create(path, force)?;
        // Writing into a stream only buffers: the header cannot fail here.
        PcapWriter::new(stream, link).map_err(|e| OutputError::Io {
            action: "writing",
            path: path.to_path_buf(),
            source: e,
        })
    }

    /// Writes one record, whole or not at all: once a write to the file failed, records are
    /// counted as not written ([`Stream::summary`]) and the caller decides whether to go on.
    pub fn record(&mut self, ts: Timestamp, data: &[u8], orig_len: u32) -> io::Result<()> {
        self.write(ts, data, orig_len)?;
        self.out.end_record();
        Ok(())
    }

    /// Removes the file again (see [`Stream::abandon`]).
    pub fn abandon(self) {
        self.out.abandon();
    }

    pub fn stream(&self) -> &Stream {
        &self.out
    }

    pub fn stream_mut(&mut self) -> &mut Stream {
        &mut self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::CaptureReader;

    #[test]
    fn writer_round_trip_keeps_ts_link_data_and_orig_len() {
        let mut w = PcapWriter::new(Vec::new(), LinkType::RAW).unwrap();
        w.write(Timestamp(1_700_000_000_123_456_789), b"abc", 1500)
            .unwrap();
        w.write(Timestamp(1_700_000_001_000_000_001), b"", 0)
            .unwrap();
        w.write(Timestamp(5), b"xyz", 1).unwrap();
        let bytes = w.into_inner();
        let mut r = CaptureReader::new(&bytes[..], "rt.pcap".into()).unwrap();
        let f = r.next_frame().unwrap().unwrap();
        assert_eq!(
            (f.ts, f.link, f.data, f.orig_len),
            (
                Timestamp(1_700_000_000_123_456_789),
                LinkType::RAW,
                &b"abc"[..],
                1500
            )
        );
        let f = r.next_frame().unwrap().unwrap();
        assert_eq!(
            (f.ts.0, f.data.len(), f.orig_len),
            (1_700_000_001_000_000_001, 0, 0)
        );
        let f = r.next_frame().unwrap().unwrap();
        assert_eq!((f.ts.0, f.orig_len), (5, 3));
        assert!(r.next_frame().unwrap().is_none());
        assert_eq!(r.counters().records, 3);
        assert!(r.warnings().is_empty());
    }

    #[test]
    fn writer_refuses_pre_epoch_and_oversize() {
        let mut w = PcapWriter::new(Vec::new(), LinkType::ETHERNET).unwrap();
        assert!(w.write(Timestamp(-1), b"a", 1).is_err());
        assert!(w.write(Timestamp(0), &vec![0; 262_145], 262_145).is_err());
        assert_eq!(w.into_inner().len(), 24);
    }
}
