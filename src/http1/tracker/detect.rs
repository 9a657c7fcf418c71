//! Protocol detection on a connection's first bytes: HTTP/2, TLS and HTTP/0.9 are counted and
//! not parsed (H26), and a mid-stream pickup's roles are corrected (T14).

use super::{Conn, Ctx};
use crate::http1::head;
use crate::reassembly::Direction;

/// The HTTP/2 connection preface (RFC 9113 section 3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0";
/// TLS record type "handshake" and the major version byte of every TLS/SSL3 record.
const TLS_HANDSHAKE: u8 = 0x16;
const TLS_MAJOR: u8 = 0x03;

impl Conn {
    /// Protocol detection on the first bytes of the connection, and role correction for a
    /// mid-stream pickup (T14).
    pub(super) fn first_data(
        &mut self,
        dir: Direction,
        offset: u64,
        data: &[u8],
        cx: &mut Ctx<'_>,
    ) {
        if self.midstream {
            let line_end = memchr::memchr(b'\n', data).unwrap_or(data.len());
            let flip = match dir {
                Direction::ClientToServer => data.starts_with(b"HTTP/1."),
                Direction::ServerToClient => head::is_request_line(&data[..line_end]),
            };
            if flip {
                self.swapped = true;
                std::mem::swap(&mut self.client, &mut self.server);
                cx.counters.direction_flipped += 1;
            }
            return;
        }
        if dir != Direction::ClientToServer || offset != 0 {
            return;
        }
        if data.starts_with(H2_PREFACE) {
            cx.counters.non_http1_h2 += 1;
            self.stop(cx);
        } else if data.len() >= 2 && data[0] == TLS_HANDSHAKE && data[1] == TLS_MAJOR {
            cx.counters.non_http1_tls += 1;
            self.stop(cx);
        }
    }
}

/// An HTTP/0.9 simple request: `GET`, a space, a target and the line end.
pub(super) fn is_http09(bytes: &[u8]) -> bool {
    let line = match memchr::memchr(b'\n', bytes) {
        Some(n) => &bytes[..n],
        None => return false,
    };
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    line.starts_with(b"GET /") && memchr::memchr(b' ', &line[4..]).is_none()
}
