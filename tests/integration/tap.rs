//! A tap port: client and server in network namespaces of their own, joined by a bridge that
//! floods every frame to every port; shadowtap listens in promiscuous mode on a third port,
//! sees traffic that is neither from nor to its host, and mirrors it to a shadow.

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use super::capture::capture_skipped;
use super::mirror::{exchange, mirror_on, production, targets};
use super::replay::{shadow, Behaviour};
use crate::support::netns::{self, Hub};

#[test]
fn mirror_on_a_tap_port_sees_other_hosts_traffic() {
    if capture_skipped() {
        return;
    }
    if !netns::available() {
        eprintln!("skipped: network namespaces cannot be made here");
        return;
    }
    let hub = Hub::new();
    let server_ip = hub.server_ip.clone();
    let prod: SocketAddr = Hub::within(&hub.server_ns, move || {
        production(&format!("{server_ip}:0"))
    });
    let shadow = shadow(Behaviour::Answer(200));
    let m = mirror_on(
        &hub.tap,
        &[
            "--promisc",
            "--port",
            &prod.port().to_string(),
            "--shadow",
            &shadow.url,
            "--allow-writes",
        ],
    );
    // The client reaches the server across the bridge; nothing of it touches this host's
    // own addresses.
    let mut conn: TcpStream = Hub::within(&hub.client_ns, move || {
        TcpStream::connect_timeout(&prod, Duration::from_secs(5))
            .expect("connect across the bridge")
    });
    exchange(&mut conn, "GET /tap/1 HTTP/1.1\r\nHost: prod\r\n\r\n", 1);
    exchange(
        &mut conn,
        "GET /tap/2 HTTP/1.1\r\nHost: prod\r\n\r\nGET /tap/3?q=x HTTP/1.1\r\nHost: prod\r\n\r\n",
        2,
    );
    exchange(
        &mut conn,
        "POST /tap/form HTTP/1.1\r\nHost: prod\r\nContent-Length: 5\r\n\r\nhello",
        1,
    );
    drop(conn);
    let (code, report, err) = m.stop("-INT", Duration::from_millis(800));
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        targets(&shadow.seen),
        ["/tap/1", "/tap/2", "/tap/3?q=x", "/tap/form"],
        "{report}"
    );
    assert_eq!(report["counts"]["seen"], 4, "{report}");
    assert_eq!(report["counts"]["replayed"], 4, "{report}");
    // Production timed off the tap: every request answered, measured.
    assert_eq!(report["production"]["status"]["2xx"], 4, "{report}");
    assert_eq!(report["capture"]["kernel_drops"], 0, "{report}");
    assert!(
        report["capture"]["interface"] == hub.tap.as_str(),
        "{report}"
    );
}

#[test]
fn a_shadow_that_is_production_seen_from_a_tap_port_stops_at_first_sight() {
    // The shadow URL names the production server across the bridge. Filtering the shadow's
    // traffic out of the capture once hid all of production's (seen 0, exit 0, no word); now
    // only this host's own traffic with it is left out, production's stays visible, and
    // nothing is sent to it.
    if capture_skipped() {
        return;
    }
    if !netns::available() {
        eprintln!("skipped: network namespaces cannot be made here");
        return;
    }
    let hub = Hub::new();
    let server_ip = hub.server_ip.clone();
    let prod: SocketAddr = Hub::within(&hub.server_ns, move || {
        production(&format!("{server_ip}:0"))
    });
    let m = mirror_on(
        &hub.tap,
        &[
            "--promisc",
            "--port",
            &prod.port().to_string(),
            "--shadow",
            &format!("http://{prod}"),
        ],
    );
    let mut conn: TcpStream = Hub::within(&hub.client_ns, move || {
        TcpStream::connect_timeout(&prod, Duration::from_secs(5))
            .expect("connect across the bridge")
    });
    for i in 0..3 {
        exchange(
            &mut conn,
            &format!("GET /prod/{i} HTTP/1.1\r\nHost: prod\r\n\r\n"),
            1,
        );
    }
    drop(conn);
    let (code, report, err) = m.stop("-INT", Duration::from_millis(800));
    assert_eq!(code, 0, "{err}");
    assert_eq!(report["counts"]["seen"], 3, "{report}");
    assert_eq!(report["counts"]["replayed"], 0, "{report}");
    assert_eq!(
        report["counts"]["filtered"]["production_target"], 3,
        "{report}"
    );
    assert!(
        err.contains("a server in the capture (production): nothing more is sent"),
        "{err}"
    );
}
