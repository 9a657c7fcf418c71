use super::*;

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn guard(targets: &[&str], local: &[(&str, &str)]) -> Guard {
    let addrs: Vec<SocketAddr> = targets.iter().map(|t| addr(t)).collect();
    let local = LocalAddrs {
        by_interface: local
            .iter()
            .map(|(i, a)| (i.to_string(), a.parse().unwrap()))
            .collect(),
    };
    Guard::new(
        vec![Target::new("shadow", "http://x", &addrs)],
        local,
        false,
    )
}

#[test]
fn v4_mapped_addresses_are_their_ipv4_address() {
    assert_eq!(
        canonical(addr("[::ffff:127.0.0.1]:80")),
        addr("127.0.0.1:80")
    );
    assert_eq!(canonical(addr("[::1]:80")), addr("[::1]:80"));
    let g = guard(&["[::ffff:10.0.0.2]:80"], &[]);
    assert!(g.target_of(addr("10.0.0.2:80")).is_some());
    assert!(g.target_of(addr("10.0.0.2:81")).is_none());
}

#[test]
fn an_unspecified_target_is_every_local_address() {
    let g = guard(&["0.0.0.0:8080"], &[("eth0", "10.1.2.3")]);
    assert!(g.target_of(addr("127.0.0.1:8080")).is_some());
    assert!(g.target_of(addr("10.1.2.3:8080")).is_some());
    assert!(g.target_of(addr("[::1]:8080")).is_some());
    assert!(g.target_of(addr("10.1.2.4:8080")).is_none(), "not ours");
    assert!(g.target_of(addr("10.1.2.3:8081")).is_none(), "other port");
}

#[test]
fn every_resolved_address_counts() {
    let g = guard(&["127.0.0.1:9000", "[::1]:9000"], &[]);
    assert!(g.target_of(addr("[::1]:9000")).is_some());
    assert!(g.target_of(addr("127.0.0.1:9000")).is_some());
}

#[test]
fn the_first_sight_stops_every_later_request() {
    let mut g = guard(&["127.0.0.1:9000"], &[]);
    assert_eq!(g.check(addr("10.0.0.2:80")), Ok(()));
    assert_eq!(
        g.check(addr("[::ffff:127.0.0.1]:9000")),
        Err(Skip::ProductionTarget)
    );
    // Another server, after: refused too.
    assert_eq!(g.check(addr("10.0.0.2:80")), Err(Skip::ProductionTarget));
    assert_eq!(
        g.seen().map(|(_, s)| s),
        Some(addr("[::ffff:127.0.0.1]:9000"))
    );
    let mut allowed = Guard::new(g.targets().to_vec(), LocalAddrs::default(), true);
    assert_eq!(allowed.check(addr("127.0.0.1:9000")), Ok(()));
}

#[test]
fn a_local_target_is_this_machine_on_its_port() {
    // A server listening on every address answers on loopback too.
    let g = guard(&["127.0.0.1:8080"], &[("eth0", "10.1.2.3")]);
    assert!(g.target_of(addr("10.1.2.3:8080")).is_some());
    assert!(g.target_of(addr("127.0.0.9:8080")).is_some());
    assert!(g.target_of(addr("10.1.2.3:8081")).is_none(), "other port");
    assert!(
        g.target_of(addr("10.1.2.4:8080")).is_none(),
        "another machine"
    );
    let remote = guard(&["10.9.9.9:8080"], &[("eth0", "10.1.2.3")]);
    assert!(remote.target_of(addr("10.1.2.3:8080")).is_none());
}

#[test]
fn every_port_of_every_target_is_looked_at() {
    // Two targets, one with addresses on two ports: a server on any of the three ports is
    // checked in full, one on another port never is.
    let local = LocalAddrs {
        by_interface: vec![("eth0".into(), "10.1.2.3".parse().unwrap())],
    };
    let g = Guard::new(
        vec![
            Target::new(
                "shadow",
                "http://a",
                &[addr("10.0.0.5:8080"), addr("[::1]:9090")],
            ),
            Target::new("baseline", "http://b", &[addr("127.0.0.1:7070")]),
        ],
        local,
        false,
    );
    for p in [7070, 8080, 9090] {
        assert!(g.is_target_port(p), "{p}");
    }
    assert!(!g.is_target_port(80));
    assert_eq!(
        g.target_of(addr("10.0.0.5:8080")).map(|t| t.role),
        Some("shadow")
    );
    assert_eq!(
        g.target_of(addr("10.1.2.3:9090")).map(|t| t.role),
        Some("shadow")
    );
    assert_eq!(
        g.target_of(addr("10.1.2.3:7070")).map(|t| t.role),
        Some("baseline")
    );
    assert!(g.target_of(addr("10.0.0.5:80")).is_none());
    // The scan: a segment between two ports no target has is nothing to it.
    let mut scan = ServerScan::default();
    assert_eq!(
        scan.segment(&g, &segment("10.0.0.5:80", "10.0.0.1:8081", 0x18)),
        None
    );
    assert_eq!(
        scan.segment(&g, &segment("10.0.0.1:80", "127.0.0.1:7070", 0x18)),
        Some(addr("127.0.0.1:7070"))
    );
}

#[test]
fn a_live_capture_refuses_a_local_target_its_filter_admits() {
    let g = guard(&["127.0.0.1:8080"], &[("eth0", "10.1.2.3")]);
    let port = |p: u16| move |a: SocketAddr| a.port() == p;
    assert!(g.local_to_capture("lo", port(8080)).is_some());
    assert!(
        g.local_to_capture("lo", port(9090)).is_none(),
        "not admitted"
    );
    // Production on eth0's address, port 8080: the loopback shadow reaches it.
    assert_eq!(
        g.local_to_capture("eth0", port(8080)).map(|(_, a)| a),
        Some(addr("10.1.2.3:8080"))
    );
    let remote = guard(&["10.9.9.9:8080"], &[("eth0", "10.1.2.3")]);
    assert!(remote.local_to_capture("eth0", port(8080)).is_none());
    let any = guard(&["0.0.0.0:8080"], &[("eth0", "10.1.2.3")]);
    assert_eq!(
        any.local_to_capture("eth0", port(8080)).map(|(_, a)| a),
        Some(addr("10.1.2.3:8080"))
    );
}

fn segment(src: &str, dst: &str, flags: u8) -> crate::wire::Segment<'static> {
    crate::wire::Segment {
        ts: crate::capture::Timestamp(0),
        src: addr(src),
        dst: addr(dst),
        seq: crate::wire::SeqNumber(0),
        ack: crate::wire::SeqNumber(0),
        flags: crate::wire::TcpFlags(flags),
        window: 0,
        payload: b"",
        missing: 0,
    }
}

#[test]
fn the_scan_counts_a_target_as_a_server_unless_it_opened_the_connection() {
    use crate::wire::TcpFlags as F;
    let g = guard(&["10.0.0.5:8080"], &[]);
    // A SYN to the target, a SYN-ACK from it, data to it mid-stream: a server each time.
    for (src, dst, flags) in [
        ("10.0.0.1:40000", "10.0.0.5:8080", F::SYN),
        ("10.0.0.5:8080", "10.0.0.1:40000", F::SYN | F::ACK),
        ("10.0.0.1:40000", "[::ffff:10.0.0.5]:8080", F::ACK | F::PSH),
        ("10.0.0.5:8080", "10.0.0.1:40000", F::ACK),
    ] {
        let mut scan = ServerScan::default();
        assert_eq!(
            scan.segment(&g, &segment(src, dst, flags)).map(canonical),
            Some(addr("10.0.0.5:8080")),
            "{src} -> {dst}"
        );
    }
    // The target opened this one: it is the client, both ways.
    let mut scan = ServerScan::default();
    assert_eq!(
        scan.segment(&g, &segment("10.0.0.5:8080", "10.0.0.9:80", F::SYN)),
        None
    );
    assert_eq!(
        scan.segment(
            &g,
            &segment("10.0.0.9:80", "10.0.0.5:8080", F::SYN | F::ACK)
        ),
        None
    );
    assert_eq!(
        scan.segment(&g, &segment("10.0.0.5:8080", "10.0.0.9:80", F::ACK)),
        None
    );
    // Another peer, mid-stream: a server again.
    assert!(scan
        .segment(&g, &segment("10.0.0.7:1234", "10.0.0.5:8080", F::ACK))
        .is_some());
    // Other endpoints are nothing to it.
    assert_eq!(
        scan.segment(&g, &segment("10.0.0.1:1", "10.0.0.2:2", F::SYN)),
        None
    );
}

#[test]
fn own_traffic_is_only_what_this_machine_exchanges_with_the_shadow() {
    let g = guard(
        &["10.9.9.9:80"],
        &[("eth0", "10.1.2.3"), ("lo", "127.0.0.1")],
    );
    assert_eq!(
        g.own_traffic_filter(addr("10.9.9.9:80")),
        "host 10.9.9.9 and tcp port 80 and (host 10.1.2.3 or host 127.0.0.1)"
    );
    assert_eq!(
        g.own_traffic_filter(addr("127.0.0.1:80")),
        "host 127.0.0.1 and tcp port 80"
    );
}

#[test]
fn probes_are_read_by_a_real_filter() {
    let mut f = crate::capture::filter::BpfFilter::new("tcp dst port 8080 and dst host 127.0.0.1")
        .expect("compiles");
    let mut frame = |data: &[u8]| -> bool {
        f.matches(&crate::capture::Frame {
            ts: crate::capture::Timestamp(0),
            link: crate::capture::LinkType::ETHERNET,
            data,
            orig_len: data.len() as u32,
        })
    };
    assert!(frame(&probe_frame(addr("127.0.0.1:8080"), false)));
    assert!(!frame(&probe_frame(addr("127.0.0.1:8080"), true)));
    assert!(!frame(&probe_frame(addr("127.0.0.2:8080"), false)));
    let mut v6 = crate::capture::filter::BpfFilter::new("ip6 and tcp port 443").expect("compiles");
    let data = probe_frame(addr("[2001:db8::5]:443"), false);
    assert!(v6.matches(&crate::capture::Frame {
        ts: crate::capture::Timestamp(0),
        link: crate::capture::LinkType::ETHERNET,
        data: &data,
        orig_len: data.len() as u32,
    }));
}
