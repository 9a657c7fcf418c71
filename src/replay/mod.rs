//! Exchanges to the shadow: which are replayed (selection), the bytes sent (rewrites), the
//! HTTP/1.1 client and its connection pool, and the statistics of both sides.
//!
//! Owns: selection and accounting reasons, request rewriting, shadow I/O and timing, the
//! side-by-side statistics. Does not own: capture and framing (the stages before) or how the
//! report is written (that is `report`).

pub mod client;
pub mod engine;
pub mod request;
pub mod sample;
pub mod schedule;
pub mod select;
pub mod stats;
pub mod target;
mod timer;
pub mod tls;

/// A whole captured GET-like exchange for unit tests: the given method, target, headers and
/// body, no response, no flags.
#[cfg(test)]
pub(crate) fn test_exchange(
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> crate::http1::Exchange {
    use crate::http1::{Exchange, Flags, Header, Request};
    Exchange {
        flow: crate::reassembly::FlowId(1),
        client: std::net::SocketAddr::from(([10, 0, 0, 1], 1)),
        server: std::net::SocketAddr::from(([10, 0, 0, 2], 80)),
        request: Request {
            method: method.into(),
            target: target.as_bytes().to_vec(),
            version: 1,
            headers: headers
                .iter()
                .map(|(n, v)| Header {
                    name: n,
                    value: v.as_bytes(),
                })
                .collect(),
            body: body.to_vec(),
            body_len: body.len() as u64,
            body_kept: true,
            complete: true,
            first_ts: crate::capture::Timestamp(0),
            last_ts: crate::capture::Timestamp(0),
        },
        response: None,
        flags: Flags::default(),
    }
}
