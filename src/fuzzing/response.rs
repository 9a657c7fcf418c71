//! The `replay_response` target: any bytes as what the shadow answers, read by the replay
//! client's framing (`replay::client::read_head` and `read_body`, over `http1`'s head reader
//! and body decoder).

use std::future::Future;
use std::io;
use std::pin::{pin, Pin};
use std::task::{Context, Poll, Waker};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::replay::client::{read_body, read_head, Io};

/// A connection whose peer sends `data` in pieces of `piece` bytes, then closes; what is
/// written to it is discarded. Always ready, so the reading future completes on its first poll.
struct Scripted {
    data: Vec<u8>,
    at: usize,
    piece: usize,
}

impl AsyncRead for Scripted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let n = self
            .piece
            .min(buf.remaining())
            .min(self.data.len() - self.at);
        let at = self.at;
        buf.put_slice(&self.data[at..at + n]);
        self.at += n;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Scripted {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, b: &[u8]) -> Poll<io::Result<usize>> {
        Poll::Ready(Ok(b.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Responses at most this long are also read byte by byte, and the head must come out the
/// same (longer ones may cross the client's head cap at different points).
const SAME_SPLIT_MAX: usize = 16 * 1024;

/// First byte: bit 0 = the request was HEAD; bits 1-4 choose the read size (1 byte to 32
/// KiB). The rest is the response. Reading must end, never report more body than was sent,
/// and frame the head the same whatever the read size.
pub fn replay_response(data: &[u8]) {
    let Some((&ctl, response)) = data.split_first() else {
        return;
    };
    let head = ctl & 1 != 0;
    let piece = 1usize << (usize::from(ctl >> 1 & 0x0f)).min(15);
    let (framed, body) = read(response, piece, head);
    if let Some((body_len, _)) = body {
        assert!(
            body_len <= response.len() as u64,
            "{body_len} > {}",
            response.len()
        );
    }
    if response.len() <= SAME_SPLIT_MAX {
        let (byte_by_byte, _) = read(response, 1, head);
        assert_eq!(framed, byte_by_byte, "read {piece} bytes at a time, then 1");
    }
}

/// Reads `response` in pieces of `piece` bytes: the head's status, length and framing (or
/// the failure), and the body's length and reusability when the head was whole.
fn read(
    response: &[u8],
    piece: usize,
    head: bool,
) -> (Result<String, String>, Option<(u64, bool)>) {
    let mut conn: Box<dyn Io> = Box::new(Scripted {
        data: response.to_vec(),
        at: 0,
        piece,
    });
    complete(async {
        let mut buf = Vec::new();
        let (status, len, after) = match read_head(&mut conn, &mut buf, head).await {
            Ok((status, len, after, _)) => (status, len, after),
            Err((failure, _)) => return (Err(failure.name().to_string()), None),
        };
        // httparse takes any three digits, 000 included.
        assert!(len <= buf.len() && status <= 999, "{status} {len}");
        let framed = format!("{status} {len} {after:?}");
        buf.drain(..len);
        (
            Ok(framed),
            read_body(&mut conn, &mut buf, after)
                .await
                .ok()
                .map(|b| (b.len, b.reusable)),
        )
    })
}

/// Polls a future that never waits (its I/O is [`Scripted`]) to completion.
fn complete<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    match f.as_mut().poll(&mut cx) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("reading a scripted response waited"),
    }
}
