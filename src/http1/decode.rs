//! The one body decoder (hyper's `proto::h1::decode` is the model): Content-Length,
//! chunked or until the close, fed bytes and answering how many it used and whether the body
//! ended. Sans-IO: the capture tracker feeds it segments, the replay client what it read
//! from the shadow.

use super::chunked::{ChunkError, Chunked};
use super::head::BodyKind;

/// A body in progress.
#[derive(Debug)]
pub(crate) enum Decoder {
    /// Bytes still to come.
    Length(u64),
    Chunked(Chunked),
    /// Until the sender closes: never ends on its own.
    Close,
}

/// What one [`Decoder::decode`] call did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Decoded {
    /// Bytes of the input used: all of them unless the body ended inside it.
    pub used: usize,
    /// The body ended (what follows `used` is the next message).
    pub done: bool,
}

impl Decoder {
    /// The decoder for a body framed `kind`; None when no body follows.
    pub fn new(kind: BodyKind) -> Option<Decoder> {
        match kind {
            BodyKind::None | BodyKind::Length(0) => None,
            BodyKind::Length(n) => Some(Decoder::Length(n)),
            BodyKind::Chunked => Some(Decoder::Chunked(Chunked::new())),
            BodyKind::Close => Some(Decoder::Close),
        }
    }

    /// Decodes from `data`, passing the body's (de-chunked) bytes to `body`. `max_meta`
    /// bounds chunk extensions and trailers.
    pub fn decode(
        &mut self,
        data: &[u8],
        max_meta: usize,
        body: &mut dyn FnMut(&[u8]),
    ) -> Result<Decoded, ChunkError> {
        match self {
            Decoder::Length(left) => {
                let n = (*left).min(data.len() as u64) as usize;
                body(&data[..n]);
                *left -= n as u64;
                Ok(Decoded {
                    used: n,
                    done: *left == 0,
                })
            }
            Decoder::Chunked(c) => {
                let used = c.feed(data, max_meta, body)?;
                Ok(Decoded {
                    used,
                    done: c.done(),
                })
            }
            Decoder::Close => {
                body(data);
                Ok(Decoded {
                    used: data.len(),
                    done: false,
                })
            }
        }
    }

    /// `len` bytes of the body were never seen (a capture gap): true when the framing
    /// survives it, which only a Content-Length body still longer than the gap does (H27).
    pub fn skip(&mut self, len: u64) -> bool {
        match self {
            Decoder::Length(left) if len < *left => {
                *left -= len;
                true
            }
            _ => false,
        }
    }

    /// Whether the body ends only at the sender's close.
    pub fn is_close(&self) -> bool {
        matches!(self, Decoder::Close)
    }

    /// Whether a chunked body carried chunk extensions, and trailers.
    pub fn chunk_meta(&self) -> (bool, bool) {
        match self {
            Decoder::Chunked(c) => (c.extensions, c.trailers),
            _ => (false, false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `parts` one by one; the body bytes, bytes used and whether it ended.
    fn run(kind: BodyKind, parts: &[&[u8]]) -> (Vec<u8>, usize, bool) {
        let mut d = Decoder::new(kind).expect("a body");
        let mut body = Vec::new();
        let (mut used, mut done) = (0, false);
        for p in parts {
            let r = d
                .decode(p, 1024, &mut |b| body.extend_from_slice(b))
                .unwrap();
            used += r.used;
            done = r.done;
            if done {
                break;
            }
        }
        (body, used, done)
    }

    #[test]
    fn each_framing_says_what_it_used_and_where_the_body_ends() {
        assert_eq!(
            run(BodyKind::Length(5), &[b"ab", b"cdeNEXT"]),
            (b"abcde".to_vec(), 5, true)
        );
        assert_eq!(
            run(BodyKind::Chunked, &[b"3\r\nabc\r\n0\r\n\r\nNEXT"]),
            (b"abc".to_vec(), 13, true)
        );
        assert_eq!(
            run(BodyKind::Close, &[b"ab", b"cd"]),
            (b"abcd".to_vec(), 4, false)
        );
        assert!(Decoder::new(BodyKind::None).is_none());
        assert!(Decoder::new(BodyKind::Length(0)).is_none());
    }

    #[test]
    fn only_a_length_body_longer_than_a_gap_survives_it() {
        let mut d = Decoder::Length(10);
        assert!(d.skip(9));
        assert!(!d.skip(1), "the gap reaches the end");
        assert!(!Decoder::Close.skip(1));
        assert!(!Decoder::Chunked(Chunked::new()).skip(1));
    }
}
