//! The two ways a capture file fails: it cannot be opened as a capture ([`OpenError`], F01/F09)
//! or a record inside it is impossible ([`ReadError`], F03/F05). Each displays as one line that
//! names the file, so the caller can print it as is.
//!
//! Does not own: warnings that are not failures (a truncated tail, F02), which the reader keeps
//! as strings.

use std::io;

/// Why a capture file could not be opened; one line naming the file.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("{name}: cannot open: {source}")]
    Io {
        name: String,
        #[source]
        source: io::Error,
    },
    /// F01: a zero-length file.
    #[error("{name}: empty file (0 bytes); not a capture file")]
    Empty { name: String },
    /// F01: the magic is known but the file ends inside the file header.
    #[error("{name}: only {len} bytes, shorter than the {format} file header; not a complete capture file")]
    TooShort {
        name: String,
        format: &'static str,
        len: usize,
    },
    /// F09: gzip, zstd, bzip2, xz...
    #[error("{name}: compressed ({kind}); decompress it first")]
    Compressed { name: String, kind: &'static str },
    /// F01/F09: unknown magic; `magic` is the first bytes in hex.
    #[error("{name}: not a capture file ({what}; first bytes {magic})")]
    NotCapture {
        name: String,
        what: &'static str,
        magic: String,
    },
    /// The magic is right but the file header is unusable (bad pcapng byte-order magic, ...).
    #[error("{name}: bad capture file header: {reason}")]
    BadHeader { name: String, reason: String },
}

impl OpenError {
    /// The short reason label for the `pcap.open_errors{reason}` counter.
    pub fn reason(&self) -> &'static str {
        match self {
            OpenError::Io { .. } => "io",
            OpenError::Empty { .. } => "empty",
            OpenError::TooShort { .. } => "too_short",
            OpenError::Compressed { .. } => "compressed",
            OpenError::NotCapture { .. } => "bad_magic",
            OpenError::BadHeader { .. } => "bad_header",
        }
    }
}

/// What is wrong with one pcapng block (F05, F07).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockProblem {
    #[error("block length {0} is shorter than the 12-byte minimum")]
    TooShort(u32),
    #[error("block length {0} is not a multiple of 4")]
    Unaligned(u32),
    #[error("block length {len} exceeds the limit of {limit} bytes")]
    TooLarge { len: u32, limit: u32 },
    #[error("trailing block length {trailing} differs from leading length {leading}")]
    TrailerMismatch { leading: u32, trailing: u32 },
    #[error("section header byte-order magic {0:08x} is neither 1a2b3c4d nor 4d3c2b1a")]
    ByteOrder(u32),
    #[error("unsupported pcapng version {0}.{1}")]
    Version(u16, u16),
    #[error("captured length {caplen} does not fit in a block of {len} bytes")]
    PacketExceedsBlock { caplen: u32, len: u32 },
    #[error("{0} block is shorter than its fixed fields")]
    Truncated(&'static str),
    #[error("first block is not a section header")]
    NoSection,
}

/// Why reading stopped in the middle of a capture file; one line naming the file.
///
/// After a `ReadError` the reader is finished: later calls return `Ok(None)`.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{name}: read error at byte {offset}: {source}")]
    Io {
        name: String,
        offset: u64,
        #[source]
        source: io::Error,
    },
    /// F03: a classic pcap record claims more captured bytes than any real capture holds.
    #[error("{name}: record {record} at byte {offset} claims {caplen} captured bytes (limit {limit}); file is corrupt, stopped reading it")]
    RecordInvalid {
        name: String,
        record: u64,
        offset: u64,
        caplen: u32,
        limit: u32,
    },
    /// F05: an impossible pcapng block.
    #[error("{name}: pcapng block {block} at byte {offset}: {problem}; stopped reading it")]
    BlockInvalid {
        name: String,
        block: u64,
        offset: u64,
        problem: BlockProblem,
    },
}

impl ReadError {
    /// The name of the file the error came from.
    pub fn file_name(&self) -> &str {
        match self {
            ReadError::Io { name, .. }
            | ReadError::RecordInvalid { name, .. }
            | ReadError::BlockInvalid { name, .. } => name,
        }
    }
}
