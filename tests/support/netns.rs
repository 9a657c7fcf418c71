//! Network namespaces for tap-port tests: hosts that exist only for the test, joined by a
//! bridge that floods every frame to every port (a hub), one port of which is the tap.
//!
//! ```text
//!  netns cli: c0 10.213.x.1 ── c1 ┐
//!                                 ├─ bridge (ageing_time 0: floods) ── t0 ═ t1  (the tap)
//!  netns srv: s0 10.213.x.2 ── s1 ┘
//! ```
//!
//! Everything is created with `ip` and removed when the [`Hub`] is dropped.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::process::Command;
use std::thread;

/// Runs `ip ARGS`, panicking with its stderr on failure.
fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Whether namespaces and bridges can be made here (root with iproute2).
pub fn available() -> bool {
    let name = format!("stprobe{}", std::process::id() % 100_000);
    let made = Command::new("ip")
        .args(["netns", "add", &name])
        .output()
        .is_ok_and(|o| o.status.success());
    if made {
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
    }
    made
}

/// Two hosts in their own namespaces, a flooding bridge between them, and a tap interface
/// in this namespace that sees a copy of every frame.
pub struct Hub {
    pub client_ns: String,
    pub server_ns: String,
    pub client_ip: String,
    pub server_ip: String,
    /// The interface to capture on (in the test's own namespace).
    pub tap: String,
    bridge: String,
    tap_peer: String,
}

impl Hub {
    pub fn new() -> Hub {
        // Unique per hub: tests of one process may each build one at the same time.
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 10;
        let id = std::process::id() % 10_000 * 10 + n;
        let subnet = id % 250 + 1;
        let hub = Hub {
            client_ns: format!("stcli{id}"),
            server_ns: format!("stsrv{id}"),
            client_ip: format!("10.213.{subnet}.1"),
            server_ip: format!("10.213.{subnet}.2"),
            tap: format!("stt1-{id}"),
            bridge: format!("stbr{id}"),
            tap_peer: format!("stt0-{id}"),
        };
        // Made before anything can fail, so that Drop cleans up whatever was created.
        let (c1, s1) = (format!("stc1-{id}"), format!("sts1-{id}"));
        ip(&["netns", "add", &hub.client_ns]);
        ip(&["netns", "add", &hub.server_ns]);
        ip(&[
            "link",
            "add",
            &hub.bridge,
            "type",
            "bridge",
            "ageing_time",
            "0",
            "stp_state",
            "0",
        ]);
        for (ns, port, addr) in [
            (&hub.client_ns, &c1, &hub.client_ip),
            (&hub.server_ns, &s1, &hub.server_ip),
        ] {
            ip(&[
                "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns,
            ]);
            ip(&["link", "set", port, "master", &hub.bridge, "up"]);
            ip(&[
                "-n",
                ns,
                "addr",
                "add",
                &format!("{addr}/24"),
                "dev",
                "eth0",
            ]);
            ip(&["-n", ns, "link", "set", "eth0", "up"]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        ip(&[
            "link",
            "add",
            &hub.tap_peer,
            "type",
            "veth",
            "peer",
            "name",
            &hub.tap,
        ]);
        ip(&["link", "set", &hub.tap_peer, "master", &hub.bridge, "up"]);
        ip(&["link", "set", &hub.tap, "up"]);
        ip(&["link", "set", &hub.bridge, "up"]);
        hub
    }

    /// Runs `f` on a thread inside namespace `ns`: sockets it creates belong there, and
    /// stay usable from any thread afterwards.
    pub fn within<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
        let file = File::open(format!("/var/run/netns/{ns}")).expect("open netns");
        thread::spawn(move || {
            // SAFETY: setns on a valid namespace descriptor; it moves only this thread.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
            f()
        })
        .join()
        .expect("thread in namespace")
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        // Deleting a namespace deletes its end of each veth pair, and with it the other end.
        for args in [
            vec!["netns", "del", self.client_ns.as_str()],
            vec!["netns", "del", self.server_ns.as_str()],
            vec!["link", "del", self.tap_peer.as_str()],
            vec!["link", "del", self.bridge.as_str()],
        ] {
            let _ = Command::new("ip").args(&args).output();
        }
    }
}
