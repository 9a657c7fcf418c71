//! pcapng blocks (draft-ietf-opsawg-pcapng): sections with their own byte order, interfaces
//! with their own link type and timestamp resolution (F06), and the packet blocks.
//!
//! Owns: block framing checks (F05), per-section interface tables, timestamp conversion.
//! Does not own: buffering, truncated tails or error messages with file names (`reader`).
//! Sans-IO: it is handed whole blocks.

use super::counters::{CaptureCounters, Limits};
use super::endian::Endian;
use super::error::BlockProblem;
use super::{LinkType, Timestamp};

/// Section Header Block; also the file magic. A palindrome, so readable before the byte order
/// is known.
pub(crate) const BT_SHB: u32 = 0x0A0D_0D0A;
const BT_IDB: u32 = 1;
/// Obsolete Packet Block.
const BT_PB: u32 = 2;
const BT_SPB: u32 = 3;
const BT_NRB: u32 = 4;
const BT_ISB: u32 = 5;
const BT_EPB: u32 = 6;
const BT_SYSTEMD_JOURNAL: u32 = 9;
const BT_DSB: u32 = 0x0A;
const BT_CUSTOM: u32 = 0x0BAD;
const BT_CUSTOM_NOCOPY: u32 = 0x4000_0BAD;

const BYTE_ORDER_MAGIC: u32 = 0x1A2B_3C4D;
const VERSION_MAJOR: u16 = 1;

/// Block type + total length, then the body, then the total length again.
const OFF_TYPE: usize = 0;
const OFF_LEN: usize = 4;
pub(crate) const MIN_BLOCK_LEN: usize = 12;
const TRAILER_LEN: usize = 4;

const SHB_OFF_BYTE_ORDER: usize = 8;
const SHB_OFF_MAJOR: usize = 12;
const SHB_OFF_MINOR: usize = 14;
const SHB_MIN_LEN: usize = 28;

const IDB_OFF_LINKTYPE: usize = 8;
const IDB_OFF_SNAPLEN: usize = 12;
const IDB_OFF_OPTIONS: usize = 16;
const IDB_MIN_LEN: usize = 20;

/// EPB and the obsolete PB share offsets, except PB's interface id is 16 bits.
const PKT_OFF_IF: usize = 8;
const PKT_OFF_TS_HIGH: usize = 12;
const PKT_OFF_TS_LOW: usize = 16;
const PKT_OFF_CAPLEN: usize = 20;
const PKT_OFF_ORIG_LEN: usize = 24;
const PKT_OFF_DATA: usize = 28;

const SPB_OFF_ORIG_LEN: usize = 8;
const SPB_OFF_DATA: usize = 12;

const OPT_HEADER_LEN: usize = 4;
const OPT_ENDOFOPT: u16 = 0;
const OPT_IF_TSRESOL: u16 = 9;
const OPT_IF_TSOFFSET: u16 = 14;
/// In `if_tsresol`, the high bit selects a power of 2 instead of a power of 10.
const TSRESOL_POW2: u8 = 0x80;
const TSRESOL_EXP: u8 = 0x7F;
const DEFAULT_TSRESOL: u8 = 6;

const NANOS_PER_SEC: u64 = 1_000_000_000;

/// How to turn an interface's timestamp units into nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Resolution {
    Mul(u64),
    Div(u64),
    Pow2(u32),
    /// Units so fine that every real timestamp is below one nanosecond.
    Zero,
}

impl Resolution {
    fn from_tsresol(v: u8) -> Self {
        let exp = u32::from(v & TSRESOL_EXP);
        if v & TSRESOL_POW2 != 0 {
            Resolution::Pow2(exp)
        } else if exp <= 9 {
            Resolution::Mul(10u64.pow(9 - exp))
        } else {
            10u64
                .checked_pow(exp - 9)
                .map_or(Resolution::Zero, Resolution::Div)
        }
    }

    #[inline]
    fn nanos(self, units: u64) -> i64 {
        let ns: u128 = match self {
            Resolution::Mul(m) => u128::from(units) * u128::from(m),
            Resolution::Div(d) => u128::from(units / d),
            Resolution::Pow2(e) => (u128::from(units) * u128::from(NANOS_PER_SEC)) >> e,
            Resolution::Zero => 0,
        };
        i64::try_from(ns).unwrap_or(i64::MAX)
    }
}

#[derive(Clone, Copy, Debug)]
struct Interface {
    link: LinkType,
    snaplen: u32,
    resolution: Resolution,
    offset_nanos: i64,
}

/// A block's meaning for the reader.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// A packet: its bytes are `block[data_off..data_off + caplen]`.
    Packet {
        ts: Timestamp,
        link: LinkType,
        data_off: usize,
        caplen: u32,
        orig_len: u32,
    },
    /// Anything else: section or interface headers, statistics, skipped blocks.
    Other,
}

/// The state of a pcapng stream between blocks.
#[derive(Debug)]
pub(crate) struct Pcapng {
    endian: Option<Endian>,
    /// This section's interfaces, at most `Limits::max_interfaces`.
    interfaces: Vec<Interface>,
    /// For Simple Packet Blocks, which carry no timestamp.
    last_ts: Timestamp,
    max_block: u32,
    max_shb: u32,
    max_interfaces: usize,
}

impl Pcapng {
    pub(crate) fn new(limits: &Limits) -> Self {
        Pcapng {
            endian: None,
            interfaces: Vec::new(),
            last_ts: Timestamp(0),
            max_block: limits.max_block,
            max_shb: limits.max_shb,
            max_interfaces: limits.max_interfaces,
        }
    }

    /// The total length of the block starting `head` (at least [`MIN_BLOCK_LEN`] bytes),
    /// checked against F05's rules. A section header switches the byte order here, since its
    /// own length is written in it.
    pub(crate) fn block_len(&mut self, head: &[u8]) -> Result<usize, BlockProblem> {
        let btype = Endian::Little
            .u32_at(head, OFF_TYPE)
            .ok_or(BlockProblem::Truncated("block"))?;
        let limit = if btype == BT_SHB {
            let magic = Endian::Little
                .u32_at(head, SHB_OFF_BYTE_ORDER)
                .ok_or(BlockProblem::Truncated("section header"))?;
            self.endian = Some(match magic {
                BYTE_ORDER_MAGIC => Endian::Little,
                m if m.swap_bytes() == BYTE_ORDER_MAGIC => Endian::Big,
                m => return Err(BlockProblem::ByteOrder(m)),
            });
            self.max_shb.min(self.max_block)
        } else {
            self.max_block
        };
        let endian = self.endian.ok_or(BlockProblem::NoSection)?;
        let len = endian
            .u32_at(head, OFF_LEN)
            .ok_or(BlockProblem::Truncated("block"))?;
        if (len as usize) < MIN_BLOCK_LEN {
            return Err(BlockProblem::TooShort(len));
        }
        if len % 4 != 0 {
            return Err(BlockProblem::Unaligned(len));
        }
        if len > limit {
            return Err(BlockProblem::TooLarge { len, limit });
        }
        Ok(len as usize)
    }

    /// Interprets one whole block (as long as [`Pcapng::block_len`] said).
    pub(crate) fn parse(
        &mut self,
        block: &[u8],
        counters: &mut CaptureCounters,
    ) -> Result<Outcome, BlockProblem> {
        let e = self.endian.ok_or(BlockProblem::NoSection)?;
        let short = BlockProblem::Truncated("block");
        let btype = e.u32_at(block, OFF_TYPE).ok_or(short.clone())?;
        let len = block.len();
        let leading = e.u32_at(block, OFF_LEN).ok_or(short.clone())?;
        let trailing = e
            .u32_at(block, len.saturating_sub(TRAILER_LEN))
            .ok_or(short)?;
        if leading != trailing {
            return Err(BlockProblem::TrailerMismatch { leading, trailing });
        }
        match btype {
            BT_EPB => self.packet(e, block, true, counters),
            BT_SPB => self.simple_packet(e, block, counters),
            BT_PB => self.packet(e, block, false, counters),
            BT_IDB => self.interface(e, block, counters).map(|()| Outcome::Other),
            BT_SHB => self.section(e, block, counters).map(|()| Outcome::Other),
            BT_NRB | BT_ISB | BT_SYSTEMD_JOURNAL | BT_DSB | BT_CUSTOM | BT_CUSTOM_NOCOPY => {
                Ok(Outcome::Other)
            }
            _ => {
                counters.unknown_blocks += 1;
                Ok(Outcome::Other)
            }
        }
    }

    fn section(
        &mut self,
        e: Endian,
        block: &[u8],
        counters: &mut CaptureCounters,
    ) -> Result<(), BlockProblem> {
        if block.len() < SHB_MIN_LEN {
            return Err(BlockProblem::Truncated("section header"));
        }
        let major = e.u16_at(block, SHB_OFF_MAJOR).unwrap_or(0);
        let minor = e.u16_at(block, SHB_OFF_MINOR).unwrap_or(0);
        if major != VERSION_MAJOR {
            return Err(BlockProblem::Version(major, minor));
        }
        // Interface ids are per section (pcapng 4.1).
        self.interfaces.clear();
        counters.sections += 1;
        Ok(())
    }

    fn interface(
        &mut self,
        e: Endian,
        block: &[u8],
        counters: &mut CaptureCounters,
    ) -> Result<(), BlockProblem> {
        let short = BlockProblem::Truncated("interface description");
        if block.len() < IDB_MIN_LEN {
            return Err(short);
        }
        let link = LinkType(u32::from(
            e.u16_at(block, IDB_OFF_LINKTYPE).ok_or(short.clone())?,
        ));
        let snaplen = e.u32_at(block, IDB_OFF_SNAPLEN).ok_or(short)?;
        let mut tsresol = DEFAULT_TSRESOL;
        let mut offset_secs: i64 = 0;
        let options = block
            .get(IDB_OFF_OPTIONS..block.len() - TRAILER_LEN)
            .unwrap_or(&[]);
        for (code, value) in Options::new(e, options) {
            match code {
                OPT_IF_TSRESOL => tsresol = value.first().copied().unwrap_or(tsresol),
                OPT_IF_TSOFFSET => {
                    offset_secs = e.u64_at(value, 0).map_or(0, |v| v as i64);
                }
                _ => {}
            }
        }
        if self.interfaces.len() >= self.max_interfaces {
            counters.interface_cap_hits += 1;
            return Ok(());
        }
        counters.interfaces += 1;
        self.interfaces.push(Interface {
            link,
            snaplen,
            resolution: Resolution::from_tsresol(tsresol),
            offset_nanos: offset_secs.saturating_mul(NANOS_PER_SEC as i64),
        });
        Ok(())
    }

    /// Enhanced (`enhanced`) or obsolete Packet Block.
    #[inline]
    fn packet(
        &mut self,
        e: Endian,
        block: &[u8],
        enhanced: bool,
        counters: &mut CaptureCounters,
    ) -> Result<Outcome, BlockProblem> {
        let short = BlockProblem::Truncated(if enhanced {
            "enhanced packet"
        } else {
            "packet"
        });
        let if_id = if enhanced {
            e.u32_at(block, PKT_OFF_IF)
        } else {
            e.u16_at(block, PKT_OFF_IF).map(u32::from)
        }
        .ok_or(short.clone())?;
        let high = e.u32_at(block, PKT_OFF_TS_HIGH).ok_or(short.clone())?;
        let low = e.u32_at(block, PKT_OFF_TS_LOW).ok_or(short.clone())?;
        let caplen = e.u32_at(block, PKT_OFF_CAPLEN).ok_or(short.clone())?;
        let orig_len = e.u32_at(block, PKT_OFF_ORIG_LEN).ok_or(short)?;
        // Data padded to 4 bytes, then at least the trailing length, must fit in the block.
        let need = PKT_OFF_DATA as u64 + u64::from(caplen).div_ceil(4) * 4 + TRAILER_LEN as u64;
        if need > block.len() as u64 {
            return Err(BlockProblem::PacketExceedsBlock {
                caplen,
                len: block.len() as u32,
            });
        }
        let Some(iface) = self.interfaces.get(if_id as usize) else {
            counters.unknown_interface += 1;
            return Ok(Outcome::Other);
        };
        let units = (u64::from(high) << 32) | u64::from(low);
        let ts = Timestamp(
            iface
                .resolution
                .nanos(units)
                .saturating_add(iface.offset_nanos),
        );
        self.last_ts = ts;
        Ok(Outcome::Packet {
            ts,
            link: iface.link,
            data_off: PKT_OFF_DATA,
            caplen,
            orig_len,
        })
    }

    /// Simple Packet Block: interface 0, no timestamp (the last one seen stands in), captured
    /// length implied by the block length and the interface's snap length.
    fn simple_packet(
        &mut self,
        e: Endian,
        block: &[u8],
        counters: &mut CaptureCounters,
    ) -> Result<Outcome, BlockProblem> {
        let orig_len = e
            .u32_at(block, SPB_OFF_ORIG_LEN)
            .ok_or(BlockProblem::Truncated("simple packet"))?;
        let Some(iface) = self.interfaces.first() else {
            counters.unknown_interface += 1;
            return Ok(Outcome::Other);
        };
        let room = block
            .len()
            .checked_sub(SPB_OFF_DATA + TRAILER_LEN)
            .ok_or(BlockProblem::Truncated("simple packet"))?;
        let room = u32::try_from(room).unwrap_or(u32::MAX);
        let mut caplen = orig_len.min(room);
        if iface.snaplen != 0 {
            caplen = caplen.min(iface.snaplen);
        }
        Ok(Outcome::Packet {
            ts: self.last_ts,
            link: iface.link,
            data_off: SPB_OFF_DATA,
            caplen,
            orig_len,
        })
    }
}

/// Iterates `(code, value)` over an options area; stops at `opt_endofopt` or at the first
/// option that does not fit (malformed options lose only the options).
struct Options<'a> {
    e: Endian,
    rest: &'a [u8],
}

impl<'a> Options<'a> {
    fn new(e: Endian, area: &'a [u8]) -> Self {
        Options { e, rest: area }
    }
}

impl<'a> Iterator for Options<'a> {
    type Item = (u16, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let code = self.e.u16_at(self.rest, 0)?;
        let len = usize::from(self.e.u16_at(self.rest, 2)?);
        if code == OPT_ENDOFOPT {
            return None;
        }
        let value = self.rest.get(OPT_HEADER_LEN..OPT_HEADER_LEN + len)?;
        let padded = OPT_HEADER_LEN + len.div_ceil(4) * 4;
        self.rest = self.rest.get(padded..).unwrap_or(&[]);
        Some((code, value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f06_tsresol_powers_of_ten_and_two() {
        assert_eq!(Resolution::from_tsresol(6).nanos(1_500_000), 1_500_000_000);
        assert_eq!(Resolution::from_tsresol(9).nanos(7), 7);
        assert_eq!(Resolution::from_tsresol(0).nanos(2), 2_000_000_000);
        assert_eq!(Resolution::from_tsresol(12).nanos(5_000), 5);
        assert_eq!(Resolution::from_tsresol(0x7F).nanos(u64::MAX), 0);
        // 2^-10 s units: 1024 units = 1 s, 512 = 0.5 s.
        assert_eq!(
            Resolution::from_tsresol(0x80 | 10).nanos(1536),
            1_500_000_000
        );
        assert_eq!(Resolution::from_tsresol(0x80).nanos(u64::MAX), i64::MAX);
    }

    #[test]
    fn options_stop_at_end_marker_and_at_overruns() {
        let mut area = Vec::new();
        area.extend_from_slice(&9u16.to_le_bytes());
        area.extend_from_slice(&1u16.to_le_bytes());
        area.extend_from_slice(&[9, 0, 0, 0]);
        area.extend_from_slice(&2u16.to_le_bytes());
        area.extend_from_slice(&100u16.to_le_bytes());
        let got: Vec<_> = Options::new(Endian::Little, &area).collect();
        assert_eq!(got, vec![(9u16, &[9u8][..])]);
    }
}
