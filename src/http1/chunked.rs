//! The chunked transfer coding (RFC 9112 section 7.1): sizes, extensions, data, trailers.

/// Hex digits accepted in a chunk size (httparse's bound, H13).
const MAX_SIZE_DIGITS: u8 = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Size,
    /// After the size: extensions or whitespace up to the line feed.
    Ext,
    Data(u64),
    DataCr,
    DataLf,
    /// At the start of a trailer line; `line` counts the bytes of the current line.
    Trailer {
        line: usize,
    },
    Done,
}

/// Why a chunked body could not be decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ChunkError {
    BadSize,
    BadTerminator,
    MetaTooLarge,
}

#[derive(Debug)]
pub(crate) struct Chunked {
    state: State,
    size: u64,
    digits: u8,
    /// Extension and trailer bytes seen so far (bounded by the caller's limit).
    meta: usize,
    pub extensions: bool,
    pub trailers: bool,
}

impl Chunked {
    pub fn new() -> Chunked {
        Chunked {
            state: State::Size,
            size: 0,
            digits: 0,
            meta: 0,
            extensions: false,
            trailers: false,
        }
    }

    pub fn done(&self) -> bool {
        self.state == State::Done
    }

    /// Decodes from `data`, passing body bytes to `body`; returns how many bytes were used
    /// (all of them unless the body ended inside `data`).
    pub fn feed(
        &mut self,
        data: &[u8],
        max_meta: usize,
        body: &mut dyn FnMut(&[u8]),
    ) -> Result<usize, ChunkError> {
        let mut i = 0;
        while i < data.len() {
            match self.state {
                State::Data(left) => {
                    let n = (left as usize).min(data.len() - i);
                    body(&data[i..i + n]);
                    i += n;
                    let left = left - n as u64;
                    self.state = if left == 0 {
                        State::DataCr
                    } else {
                        State::Data(left)
                    };
                    continue;
                }
                State::Done => return Ok(i),
                _ => {}
            }
            let b = data[i];
            i += 1;
            self.state = match self.state {
                State::Size => match b {
                    b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                        self.digits += 1;
                        if self.digits > MAX_SIZE_DIGITS {
                            return Err(ChunkError::BadSize);
                        }
                        // `digits` <= 16 keeps this from overflowing.
                        self.size =
                            self.size << 4 | u64::from((b as char).to_digit(16).unwrap_or(0));
                        State::Size
                    }
                    b';' | b' ' | b'\t' if self.digits > 0 => {
                        self.extensions |= b == b';';
                        State::Ext
                    }
                    b'\r' if self.digits > 0 => State::Ext,
                    b'\n' if self.digits > 0 => self.end_size_line(),
                    _ => return Err(ChunkError::BadSize),
                },
                State::Ext => {
                    if b == b'\n' {
                        self.end_size_line()
                    } else {
                        self.meta += 1;
                        if self.meta > max_meta {
                            return Err(ChunkError::MetaTooLarge);
                        }
                        State::Ext
                    }
                }
                State::DataCr => match b {
                    b'\r' => State::DataLf,
                    b'\n' => State::Size,
                    _ => return Err(ChunkError::BadTerminator),
                },
                State::DataLf => match b {
                    b'\n' => State::Size,
                    _ => return Err(ChunkError::BadTerminator),
                },
                State::Trailer { line } => match b {
                    b'\n' if line == 0 => State::Done,
                    b'\n' => State::Trailer { line: 0 },
                    b'\r' => State::Trailer { line },
                    _ => {
                        self.trailers = true;
                        self.meta += 1;
                        if self.meta > max_meta {
                            return Err(ChunkError::MetaTooLarge);
                        }
                        State::Trailer { line: line + 1 }
                    }
                },
                State::Data(_) | State::Done => unreachable!("handled above"),
            };
            if self.state == State::Done {
                return Ok(i);
            }
        }
        Ok(i)
    }

    fn end_size_line(&mut self) -> State {
        let size = self.size;
        self.size = 0;
        self.digits = 0;
        if size == 0 {
            State::Trailer { line: 0 }
        } else {
            State::Data(size)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(parts: &[&[u8]]) -> Result<(Vec<u8>, usize, bool), ChunkError> {
        let mut c = Chunked::new();
        let mut body = Vec::new();
        let mut used = 0;
        for p in parts {
            used += c.feed(p, 16 * 1024, &mut |b| body.extend_from_slice(b))?;
        }
        Ok((body, used, c.done()))
    }

    #[test]
    fn h12_chunks_with_extensions_and_trailers() {
        let msg: &[u8] = b"4;name=v\r\nWiki\r\n5\r\npedia\r\n0\r\nExpires: never\r\n\r\nNEXT";
        let (body, used, done) = decode(&[msg]).unwrap();
        assert_eq!(body, b"Wikipedia");
        assert!(done);
        assert_eq!(used, msg.len() - 4);
        let mut c = Chunked::new();
        c.feed(msg, 1024, &mut |_| {}).unwrap();
        assert!(c.extensions && c.trailers);
    }

    #[test]
    fn h12_every_split_point_gives_the_same_body() {
        let msg: &[u8] = b"3\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\n\r\n";
        for cut in 0..msg.len() {
            let (body, used, done) = decode(&[&msg[..cut], &msg[cut..]]).unwrap();
            assert_eq!(body, b"abc0123456789abcdef", "cut {cut}");
            assert_eq!(used, msg.len());
            assert!(done);
        }
    }

    #[test]
    fn h13_oversized_chunk_size_is_an_error() {
        assert_eq!(
            decode(&[b"11111111111111111\r\n"]).unwrap_err(),
            ChunkError::BadSize
        );
        assert_eq!(decode(&[b"zz\r\n"]).unwrap_err(), ChunkError::BadSize);
        assert_eq!(
            decode(&[b"2\r\nabX"]).unwrap_err(),
            ChunkError::BadTerminator
        );
    }

    #[test]
    fn bare_lf_line_endings_are_accepted() {
        let (body, _, done) = decode(&[b"2\nab\n0\n\n"]).unwrap();
        assert_eq!(body, b"ab");
        assert!(done);
    }

    #[test]
    fn extension_flood_is_bounded() {
        let mut c = Chunked::new();
        let long = [b"1;".as_slice(), &[b'x'; 2000]].concat();
        assert_eq!(
            c.feed(&long, 1000, &mut |_| {}).unwrap_err(),
            ChunkError::MetaTooLarge
        );
    }
}
