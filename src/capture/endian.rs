//! Byte order of a capture file or pcapng section, and bounds-checked field reads with it.
//!
//! Owns: reading fixed-width integers at an offset; a read past the end is `None`, never a
//! panic. Does not own: which field is where (the format modules name their offsets).

/// Byte order in which a file (classic pcap) or a section (pcapng) was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endian {
    Little,
    Big,
}

impl Endian {
    #[inline]
    pub(crate) fn u16_at(self, b: &[u8], off: usize) -> Option<u16> {
        let raw: [u8; 2] = b.get(off..off.checked_add(2)?)?.try_into().ok()?;
        Some(match self {
            Endian::Little => u16::from_le_bytes(raw),
            Endian::Big => u16::from_be_bytes(raw),
        })
    }

    #[inline]
    pub(crate) fn u32_at(self, b: &[u8], off: usize) -> Option<u32> {
        let raw: [u8; 4] = b.get(off..off.checked_add(4)?)?.try_into().ok()?;
        Some(match self {
            Endian::Little => u32::from_le_bytes(raw),
            Endian::Big => u32::from_be_bytes(raw),
        })
    }

    #[inline]
    pub(crate) fn u64_at(self, b: &[u8], off: usize) -> Option<u64> {
        let raw: [u8; 8] = b.get(off..off.checked_add(8)?)?.try_into().ok()?;
        Some(match self {
            Endian::Little => u64::from_le_bytes(raw),
            Endian::Big => u64::from_be_bytes(raw),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_orders_and_refuses_past_the_end() {
        let b = [1u8, 2, 3, 4];
        assert_eq!(Endian::Little.u32_at(&b, 0), Some(0x0403_0201));
        assert_eq!(Endian::Big.u32_at(&b, 0), Some(0x0102_0304));
        assert_eq!(Endian::Big.u16_at(&b, 2), Some(0x0304));
        assert_eq!(Endian::Big.u16_at(&b, 3), None);
        assert_eq!(Endian::Little.u64_at(&b, 0), None);
        assert_eq!(Endian::Little.u32_at(&b, usize::MAX), None);
    }
}
