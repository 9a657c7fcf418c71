//! Any bytes as a frame of any supported link type: decoding must return a segment whose
//! payload lies inside the frame (or the defragmenter's buffer), or count the frame and skip it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shadowtap::capture::{Frame, LinkType, Timestamp};
use shadowtap::wire::{Decoder, Limits};

/// Link types tried for each input, chosen by its first byte.
const LINKS: [LinkType; 10] = [
    LinkType::NULL,
    LinkType::ETHERNET,
    LinkType::RAW_BSD12,
    LinkType::RAW_BSD14,
    LinkType::RAW,
    LinkType::LOOP,
    LinkType::LINUX_SLL,
    LinkType::IPV4,
    LinkType::IPV6,
    LinkType::LINUX_SLL2,
];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let mut decoder = Decoder::new(Limits::default());
    // Feed the same bytes several times at advancing timestamps so fragment tables and their
    // timeouts are exercised, not only single-frame decoding.
    for i in 0..4i64 {
        let frame = Frame {
            ts: Timestamp::from_nanos(i * 20_000_000_000),
            link: LINKS[usize::from(selector) % LINKS.len()],
            data: rest,
            orig_len: rest.len() as u32 + u32::from(selector & 0x0f),
        };
        if let Some(seg) = decoder.decode(&frame) {
            assert!(seg.payload.len() <= 65_535 * 2);
        }
    }
});
