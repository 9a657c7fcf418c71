//! BPF filters on frames read from files: the user's `--bpf` expression compiled by libpcap for
//! each link type met (a pcapng file can hold several), and run with `pcap_offline_filter`.

use std::collections::HashMap;

use crate::capture::{Frame, LinkType};

/// A tcpdump-syntax filter, compiled lazily once per link type.
pub struct BpfFilter {
    expr: String,
    programs: HashMap<LinkType, Option<::pcap::BpfProgram>>,
    /// Link types the expression could not be compiled for (their frames do not match).
    pub failed: Vec<(LinkType, String)>,
}

#[derive(Debug, thiserror::Error)]
#[error("invalid BPF expression {expr:?}: {reason}")]
pub struct FilterError {
    pub expr: String,
    pub reason: String,
}

impl BpfFilter {
    /// Checks the expression once against Ethernet, so a typo is a usage error before any file
    /// is read.
    pub fn new(expr: &str) -> Result<BpfFilter, FilterError> {
        let mut filter = BpfFilter {
            expr: expr.to_string(),
            programs: HashMap::new(),
            failed: Vec::new(),
        };
        let program = compile(expr, LinkType::ETHERNET).map_err(|reason| FilterError {
            expr: expr.to_string(),
            reason,
        })?;
        filter.programs.insert(LinkType::ETHERNET, Some(program));
        Ok(filter)
    }

    /// Whether the frame matches. A link type the expression cannot be compiled for matches
    /// nothing (and is listed in `failed`).
    pub fn matches(&mut self, frame: &Frame<'_>) -> bool {
        let expr = &self.expr;
        let failed = &mut self.failed;
        let program = self.programs.entry(frame.link).or_insert_with(|| {
            compile(expr, frame.link)
                .map_err(|reason| failed.push((frame.link, reason)))
                .ok()
        });
        program.as_ref().is_some_and(|p| p.filter(frame.data))
    }
}

/// `DLT_RAW` as libpcap numbers it on Linux; files store raw IP as `LINKTYPE_RAW` (101).
const DLT_RAW: u32 = 12;

fn compile(expr: &str, link: LinkType) -> Result<::pcap::BpfProgram, String> {
    // pcap_open_dead takes a DLT_ value, not the LINKTYPE_ value stored in files; they differ
    // only for raw IP.
    let dlt = match link {
        LinkType::RAW | LinkType::RAW_BSD12 | LinkType::RAW_BSD14 => DLT_RAW,
        other => other.0,
    };
    let link = i32::try_from(dlt).map_err(|_| format!("link type {} out of range", link.0))?;
    let dead = ::pcap::Capture::dead(::pcap::Linktype(link)).map_err(|e| e.to_string())?;
    dead.compile(expr, true).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::Timestamp;

    fn frame(link: LinkType, data: &[u8]) -> Frame<'_> {
        Frame {
            ts: Timestamp(0),
            link,
            data,
            orig_len: data.len() as u32,
        }
    }

    /// An IPv4/TCP packet from 10.0.0.1:1234 to 10.0.0.2:80 with no payload.
    fn ipv4_tcp() -> Vec<u8> {
        let mut p = vec![
            0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        p.extend_from_slice(&[
            0x04, 0xd2, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0,
        ]);
        p
    }

    #[test]
    fn port_filter_matches_raw_ip_frames() {
        let pkt = ipv4_tcp();
        let mut yes = BpfFilter::new("tcp port 80").unwrap();
        assert!(yes.matches(&frame(LinkType::RAW, &pkt)));
        let mut no = BpfFilter::new("tcp port 8080").unwrap();
        assert!(!no.matches(&frame(LinkType::RAW, &pkt)));
    }

    #[test]
    fn bad_expression_is_a_clear_error() {
        let err = BpfFilter::new("tcp prot 80").err().expect("must fail");
        assert!(err.to_string().contains("invalid BPF expression"));
    }
}
