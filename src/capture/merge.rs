//! [`MergedReader`]: several capture files as one stream in timestamp order.
//!
//! Owns: choosing the next frame across files, closing a file that fails and keeping its
//! error, summing counters. Does not own: opening files (the caller opens each and reports
//! its open error) or the exit code (the caller exits 2 when [`MergedReader::errors`] is not
//! empty).

use std::io::Read;

use super::counters::CaptureCounters;
use super::error::ReadError;
use super::reader::CaptureReader;
use super::{Frame, Timestamp};

struct Source<R> {
    reader: CaptureReader<R>,
    /// Timestamp of the reader's current frame; `None` once it is finished.
    head: Option<Timestamp>,
}

/// Frames of several files, smallest current timestamp first; ties go to the earlier file.
///
/// Each file is still read in its own order: a file whose timestamps go backwards (counted
/// `capture.ts_backwards`) is not re-sorted. Choosing the next frame scans the files' heads,
/// O(files) per frame, which is fine for the handful of files a command line names.
pub struct MergedReader<R> {
    sources: Vec<Source<R>>,
    /// The file whose frame was handed out last; it is advanced on the next call.
    last: Option<usize>,
    started: bool,
    errors: Vec<(usize, ReadError)>,
}

impl<R: Read> MergedReader<R> {
    pub fn new(readers: Vec<CaptureReader<R>>) -> Self {
        MergedReader {
            sources: readers
                .into_iter()
                .map(|reader| Source { reader, head: None })
                .collect(),
            last: None,
            started: false,
            errors: Vec::new(),
        }
    }

    /// Moves to the next frame of all files. A file that fails is closed, its error kept, and
    /// the merge goes on with the others. `false` when every file is finished.
    pub fn advance(&mut self) -> bool {
        if !self.started {
            self.started = true;
            for i in 0..self.sources.len() {
                self.pull(i);
            }
        } else if let Some(i) = self.last.take() {
            self.pull(i);
        }
        let mut best: Option<(Timestamp, usize)> = None;
        for (i, s) in self.sources.iter().enumerate() {
            if let Some(ts) = s.head {
                match best {
                    Some((b, _)) if b <= ts => {}
                    _ => best = Some((ts, i)),
                }
            }
        }
        self.last = best.map(|(_, i)| i);
        self.last.is_some()
    }

    /// The frame [`MergedReader::advance`] moved to, with the index of its file (the order of
    /// the readers given to `new`).
    pub fn current(&self) -> Option<(usize, Frame<'_>)> {
        let i = self.last?;
        let frame = self.sources.get(i)?.reader.current()?;
        Some((i, frame))
    }

    /// [`MergedReader::advance`] then [`MergedReader::current`].
    pub fn next_frame(&mut self) -> Option<(usize, Frame<'_>)> {
        if self.advance() {
            self.current()
        } else {
            None
        }
    }

    fn pull(&mut self, i: usize) {
        let Some(s) = self.sources.get_mut(i) else {
            return;
        };
        s.head = match s.reader.advance() {
            Ok(true) => s.reader.current().map(|f| f.ts),
            Ok(false) => None,
            Err(e) => {
                self.errors.push((i, e));
                None
            }
        };
    }

    /// Errors so far, with the index of the file each came from (its message names it too).
    pub fn errors(&self) -> &[(usize, ReadError)] {
        &self.errors
    }

    pub fn take_errors(&mut self) -> Vec<(usize, ReadError)> {
        std::mem::take(&mut self.errors)
    }

    /// True if any file failed while being read (the caller then exits 2).
    pub fn any_failed(&self) -> bool {
        !self.errors.is_empty()
    }

    /// Warnings of every file (F02 truncated tails), in file order.
    pub fn take_warnings(&mut self) -> Vec<String> {
        self.sources
            .iter_mut()
            .flat_map(|s| s.reader.take_warnings())
            .collect()
    }

    /// The sum of every file's counters.
    pub fn counters(&self) -> CaptureCounters {
        let mut sum = CaptureCounters::default();
        for s in &self.sources {
            sum.add(s.reader.counters());
        }
        sum
    }

    pub fn readers(&self) -> impl Iterator<Item = &CaptureReader<R>> {
        self.sources.iter().map(|s| &s.reader)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::endian::Endian::Little;
    use crate::capture::fixtures::{pcap_header, pcap_record, pcap_record_raw};

    fn file(records: &[(u32, &[u8])]) -> Vec<u8> {
        let mut f = pcap_header(Little, false, 65535, 1);
        for (secs, data) in records {
            pcap_record(&mut f, Little, *secs, 0, data);
        }
        f
    }

    fn drain(m: &mut MergedReader<&[u8]>) -> Vec<(usize, Vec<u8>)> {
        let mut out = Vec::new();
        while let Some((i, f)) = m.next_frame() {
            out.push((i, f.data.to_vec()));
        }
        out
    }

    #[test]
    fn merge_orders_by_timestamp_ties_by_file_order() {
        let a = file(&[(1, b"a1"), (3, b"a3"), (5, b"a5")]);
        let b = file(&[(2, b"b2"), (3, b"b3"), (4, b"b4")]);
        let readers = vec![
            CaptureReader::new(&a[..], "a".into()).unwrap(),
            CaptureReader::new(&b[..], "b".into()).unwrap(),
        ];
        let mut m = MergedReader::new(readers);
        let got: Vec<Vec<u8>> = drain(&mut m).into_iter().map(|(_, d)| d).collect();
        let want: Vec<&[u8]> = vec![b"a1", b"b2", b"a3", b"b3", b"b4", b"a5"];
        assert_eq!(got, want);
        assert_eq!((m.counters().records, m.counters().files), (6, 2));
        assert!(!m.any_failed());
    }

    #[test]
    fn merge_keeps_a_backwards_file_in_its_own_order() {
        let a = file(&[(5, b"a5"), (1, b"a1")]);
        let b = file(&[(3, b"b3")]);
        let readers = vec![
            CaptureReader::new(&a[..], "a".into()).unwrap(),
            CaptureReader::new(&b[..], "b".into()).unwrap(),
        ];
        let mut m = MergedReader::new(readers);
        let got: Vec<(usize, Vec<u8>)> = drain(&mut m);
        assert_eq!(
            got,
            vec![
                (1, b"b3".to_vec()),
                (0, b"a5".to_vec()),
                (0, b"a1".to_vec())
            ]
        );
        assert_eq!(m.counters().ts_backwards, 1);
    }

    #[test]
    fn merge_closes_a_failing_file_and_goes_on() {
        let mut bad = file(&[(1, b"x1")]);
        pcap_record_raw(&mut bad, Little, 2, 0, u32::MAX, 1, b"");
        let good = file(&[(1, b"g1"), (2, b"g2"), (3, b"g3")]);
        let mut cut = file(&[(2, b"c2")]);
        cut.extend_from_slice(&[1, 2, 3]);
        let readers = vec![
            CaptureReader::new(&bad[..], "bad.pcap".into()).unwrap(),
            CaptureReader::new(&good[..], "good.pcap".into()).unwrap(),
            CaptureReader::new(&cut[..], "cut.pcap".into()).unwrap(),
        ];
        let mut m = MergedReader::new(readers);
        assert_eq!(drain(&mut m).len(), 5);
        assert!(m.any_failed());
        let errors = m.take_errors();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].0, 0);
        assert_eq!(errors[0].1.file_name(), "bad.pcap");
        let warnings = m.take_warnings();
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].starts_with("cut.pcap: capture cut short"));
        let c = m.counters();
        assert_eq!((c.record_invalid, c.truncated_tail), (1, 1));
    }
}
