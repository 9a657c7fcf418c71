//! The HTTP stage's bounds and counters.

/// Bounds on what one connection may hold (RELIABILITY.md section 4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Request or status line plus headers (H21); past it the direction stops
    /// (`http.head_too_large`).
    pub max_head: usize,
    /// Header fields per message (`http.too_many_headers`).
    pub max_headers: usize,
    /// Request-target length (`http.uri_too_long`).
    pub max_uri: usize,
    /// Chunk extensions per message and trailer bytes per message (`http.invalid_chunk`).
    pub max_chunk_meta: usize,
    /// Unanswered requests per connection; one more and the oldest is emitted unanswered
    /// (`http.excessive_pipelining`, H04).
    pub max_pending: usize,
    /// Request body bytes kept for replay; longer bodies are counted, not kept
    /// (`body_too_large`).
    pub max_body_kept: usize,
    /// Bytes looked at for a request line at the start of a connection before it is taken
    /// for another protocol (H26, Zeek `dpd_buffer_size`).
    pub detect_budget: usize,
    /// Bytes held while looking for the next message start after a gap or at a mid-stream
    /// pickup; older bytes are dropped (counted in `http.midstream_skipped_bytes`).
    pub max_resync_buffer: usize,
    /// Bytes the tracker holds across all connections: partial heads, resync buffers,
    /// waiting requests' heads and kept bodies (`--http-memcap`; `http.memcap_hits`).
    pub memcap: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_head: 64 * 1024,
            max_headers: 100,
            max_uri: 65_534,
            max_chunk_meta: 16 * 1024,
            max_pending: 100,
            max_body_kept: 1024 * 1024,
            detect_budget: 1024,
            max_resync_buffer: 64 * 1024,
            memcap: 128 << 20,
        }
    }
}

crate::counters! {
    /// HTTP framing and pairing counters (RELIABILITY.md section 5).
    pub struct HttpCounters {
        requests = "http.requests",
        responses = "http.responses",
        exchanges = "http.exchanges",
        unanswered = "http.unanswered",
        pipelined = "http.pipelined",
        unmatched_responses = "http.unmatched_responses",
        excessive_pipelining = "http.excessive_pipelining",
        interim_responses = "http.interim_responses",
        expect_rejected = "http.expect_rejected",
        upgrades = "http.upgrades",
        connect = "http.connect",
        http09 = "http.http09",
        close_delimited = "http.close_delimited",
        request_incomplete = "http.request_incomplete",
        response_incomplete = "http.response_incomplete",
        chunk_extensions = "http.chunk_extensions",
        trailers = "http.trailers",
        invalid_chunk = "http.invalid_chunk",
        ambiguous_framing = "http.ambiguous_framing",
        invalid_content_length = "http.invalid_content_length",
        invalid_transfer_encoding = "http.invalid_transfer_encoding",
        lenient_eol = "http.lenient_eol",
        invalid_request = "http.invalid_request",
        invalid_response = "http.invalid_response",
        head_too_large = "http.head_too_large",
        too_many_headers = "http.too_many_headers",
        uri_too_long = "http.uri_too_long",
        host_anomaly = "http.host_anomaly",
        body_too_large = "http.body_too_large",
        body_gaps = "http.body_gaps",
        fatal_gaps_req = "http.fatal_gaps.req",
        fatal_gaps_resp = "http.fatal_gaps.resp",
        resyncs = "http.resyncs",
        gap_pairings = "http.gap_pairings",
        midstream_skipped_bytes = "http.midstream_skipped_bytes",
        direction_flipped = "tcp.direction_flipped",
        non_http1_tls = "flows.non_http1.tls",
        non_http1_h2 = "flows.non_http1.h2",
        non_http1_other = "flows.non_http1.other",
        tunnels = "flows.tunnels",
        /// Requests seen but never emitted as an exchange, by [`super::Lost`] reason.
        lost_gap = "http.requests_lost.gap",
        lost_truncated = "http.requests_lost.truncated",
        lost_aborted = "http.requests_lost.aborted",
        lost_capture_ended = "http.requests_lost.capture_ended",
        lost_invalid_request = "http.requests_lost.invalid_request",
        lost_memcap = "http.requests_lost.memcap",
        /// Growths the memory budget refused (a head, resync buffer, parsed head or body
        /// given up).
        memcap_hits = "http.memcap_hits",
        /// Bytes held now, and at most, under the memory budget (gauges).
        memuse = "http.memuse",
        memuse_peak = "http.memuse_peak",
        /// Retransmitted bytes that disagreed with what was delivered, found after the
        /// exchange they belong to was emitted (so it could not be flagged).
        conflict_after_emit = "http.conflict_after_emit",
    }
}

impl HttpCounters {
    /// Requests lost before they became exchanges, by reason.
    pub fn lost(&self) -> [(super::Lost, u64); 6] {
        use super::Lost;
        [
            (Lost::Gap, self.lost_gap),
            (Lost::Truncated, self.lost_truncated),
            (Lost::Aborted, self.lost_aborted),
            (Lost::CaptureEnded, self.lost_capture_ended),
            (Lost::InvalidRequest, self.lost_invalid_request),
            (Lost::Memcap, self.lost_memcap),
        ]
    }

    pub(super) fn count_lost(&mut self, why: super::Lost) {
        use super::Lost;
        let n = match why {
            Lost::Gap => &mut self.lost_gap,
            Lost::Truncated => &mut self.lost_truncated,
            Lost::Aborted => &mut self.lost_aborted,
            Lost::CaptureEnded => &mut self.lost_capture_ended,
            Lost::InvalidRequest => &mut self.lost_invalid_request,
            Lost::Memcap => &mut self.lost_memcap,
        };
        *n += 1;
    }
}
