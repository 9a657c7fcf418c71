//! The capture stage's counters (RELIABILITY.md section 5, `pcap.*`, `pcapng.*` and
//! `capture.ts_backwards`) and its limits (section 4).
//!
//! Does not own: counting what is inside frames (that is `wire`).

use crate::counters::Counters;

/// Counters of one capture reader; [`super::MergedReader`] sums those of its files.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CaptureCounters {
    /// Files opened successfully.
    pub files: u64,
    /// Files that could not be opened; the caller increments it (it opens the files, F01/F09).
    pub open_errors: u64,
    /// Frames handed out.
    pub records: u64,
    /// Captured bytes handed out.
    pub bytes: u64,
    /// F02: files whose last record was cut short.
    pub truncated_tail: u64,
    /// F03: classic pcap records with an impossible captured length.
    pub record_invalid: u64,
    /// F03: records longer than the file's snap length but within the limit; accepted whole.
    pub caplen_over_snaplen: u64,
    /// F04: records with caplen > orig_len or orig_len 0; orig_len set to caplen.
    pub len_anomaly: u64,
    /// F07: times the read buffer grew to hold a large block.
    pub buffer_grow: u64,
    /// F08: reads that returned less than the record needed (pipes, files being written).
    pub partial_reads: u64,
    /// F06: interfaces described (1 per classic pcap file, 1 per pcapng IDB).
    pub interfaces: u64,
    /// pcapng section header blocks.
    pub sections: u64,
    /// F05: impossible pcapng blocks.
    pub block_invalid: u64,
    /// F05: pcapng blocks of unknown type, skipped.
    pub unknown_blocks: u64,
    /// Packet blocks naming an interface no IDB described, skipped.
    pub unknown_interface: u64,
    /// IDBs past [`Limits::max_interfaces`] in one section, ignored.
    pub interface_cap_hits: u64,
    /// Frames older than the previous frame of the same file (merging still reads them).
    pub ts_backwards: u64,
}

impl CaptureCounters {
    /// Adds every counter of `other` to `self`.
    pub fn add(&mut self, other: &CaptureCounters) {
        let CaptureCounters {
            files,
            open_errors,
            records,
            bytes,
            truncated_tail,
            record_invalid,
            caplen_over_snaplen,
            len_anomaly,
            buffer_grow,
            partial_reads,
            interfaces,
            sections,
            block_invalid,
            unknown_blocks,
            unknown_interface,
            interface_cap_hits,
            ts_backwards,
        } = other;
        self.files += files;
        self.open_errors += open_errors;
        self.records += records;
        self.bytes += bytes;
        self.truncated_tail += truncated_tail;
        self.record_invalid += record_invalid;
        self.caplen_over_snaplen += caplen_over_snaplen;
        self.len_anomaly += len_anomaly;
        self.buffer_grow += buffer_grow;
        self.partial_reads += partial_reads;
        self.interfaces += interfaces;
        self.sections += sections;
        self.block_invalid += block_invalid;
        self.unknown_blocks += unknown_blocks;
        self.unknown_interface += unknown_interface;
        self.interface_cap_hits += interface_cap_hits;
        self.ts_backwards += ts_backwards;
    }
}

impl Counters for CaptureCounters {
    fn visit(&self, f: &mut dyn FnMut(&str, u64)) {
        f("pcap.files", self.files);
        f("pcap.open_errors", self.open_errors);
        f("pcap.records", self.records);
        f("pcap.bytes", self.bytes);
        f("pcap.truncated_tail", self.truncated_tail);
        f("pcap.record_invalid", self.record_invalid);
        f("pcap.caplen_over_snaplen", self.caplen_over_snaplen);
        f("pcap.len_anomaly", self.len_anomaly);
        f("pcap.buffer_grow", self.buffer_grow);
        f("pcap.partial_reads", self.partial_reads);
        f("pcap.interfaces", self.interfaces);
        f("pcapng.sections", self.sections);
        f("pcapng.block_invalid", self.block_invalid);
        f("pcapng.unknown_blocks", self.unknown_blocks);
        f("pcapng.unknown_interface", self.unknown_interface);
        f("pcapng.interface_cap_hits", self.interface_cap_hits);
        f("capture.ts_backwards", self.ts_backwards);
    }
}

/// Bounds on what one capture reader accepts and allocates (RELIABILITY.md section 4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest captured length of a classic pcap record; larger is corrupt (F03).
    /// Default 262144, libpcap's `MAXIMUM_SNAPLEN`.
    pub max_record: u32,
    /// Largest pcapng block (F05/F07). Default 16 MiB, libpcap's `INITIAL_MAX_BLOCKSIZE`.
    pub max_block: u32,
    /// Largest pcapng section header block (F05). Default 1 MiB, libpcap's `BT_SHB_INSANE_MAX`.
    pub max_shb: u32,
    /// Initial size of the read buffer. Default 1 MiB: one `read` call per MiB of capture.
    /// It grows (counted `pcap.buffer_grow`) up to the largest record or block allowed above.
    pub read_buffer: usize,
    /// Interfaces (IDBs) kept per pcapng section; more are counted and ignored. Default 4096.
    pub max_interfaces: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_record: 262_144,
            max_block: 16 * 1024 * 1024,
            max_shb: 1024 * 1024,
            read_buffer: 1024 * 1024,
            max_interfaces: 4096,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visit_lists_every_counter_including_zeros() {
        let c = CaptureCounters {
            ts_backwards: 3,
            ..CaptureCounters::default()
        };
        let mut seen = Vec::new();
        c.visit(&mut |name, v| seen.push((name.to_string(), v)));
        assert_eq!(seen.len(), 17);
        assert!(seen.contains(&("capture.ts_backwards".to_string(), 3)));
        assert!(seen.contains(&("pcapng.unknown_blocks".to_string(), 0)));
    }

    #[test]
    fn add_sums_fields() {
        let mut a = CaptureCounters {
            records: 2,
            files: 1,
            ..CaptureCounters::default()
        };
        a.add(&a.clone());
        assert_eq!((a.records, a.files), (4, 2));
    }
}
