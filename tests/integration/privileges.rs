//! `--user`: once the capture is open, the process keeps nothing of root (RELIABILITY.md S01),
//! as the kernel shows it in /proc/PID/status, and says so.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

use super::capture::{bin, capture_skipped};

/// The value of `key` in /proc/`pid`/status, whitespace-normalised.
fn status_field(status: &str, key: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key).and_then(|v| v.strip_prefix(':')))
        .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| panic!("no {key} in {status}"))
}

fn nobody() -> (u32, u32) {
    let out = Command::new("id").args(["-u", "nobody"]).output().unwrap();
    let uid = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    let out = Command::new("id").args(["-g", "nobody"]).output().unwrap();
    let gid = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    (uid, gid)
}

#[test]
fn after_user_no_capability_group_or_way_back_is_left() {
    if capture_skipped() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("shadowtap-privdrop-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let file = dir.join("lo.pcap");
    let mut child = Command::new(bin())
        .args(["capture", "-i", "lo", "-w", file.to_str().unwrap()])
        .args(["--port", "9", "--user", "nobody", "--duration", "30s"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut lines = Vec::new();
    // Bounded: the capture says it is capturing after dropping, or ends (EOF).
    for _ in 0..10 {
        let mut line = String::new();
        if stderr.read_line(&mut line).unwrap() == 0 {
            break;
        }
        let capturing = line.contains("capturing on lo");
        lines.push(line);
        if capturing {
            break;
        }
    }
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);

    let (uid, gid) = nobody();
    assert_eq!(status_field(&status, "NoNewPrivs"), "1", "{status}");
    assert_eq!(
        status_field(&status, "CapBnd"),
        "0000000000000000",
        "{status}"
    );
    assert_eq!(
        status_field(&status, "CapEff"),
        "0000000000000000",
        "{status}"
    );
    assert_eq!(
        status_field(&status, "CapPrm"),
        "0000000000000000",
        "{status}"
    );
    assert_eq!(status_field(&status, "Groups"), "", "{status}");
    assert_eq!(
        status_field(&status, "Uid"),
        format!("{uid} {uid} {uid} {uid}"),
        "{status}"
    );
    assert_eq!(
        status_field(&status, "Gid"),
        format!("{gid} {gid} {gid} {gid}"),
        "{status}"
    );
    let said = format!("shadowtap: dropped privileges to nobody (uid {uid}, gid {gid})\n");
    assert!(lines.contains(&said), "{lines:?}");
}
