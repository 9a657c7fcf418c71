//! `shadowtap capture` on the loopback interface (the tests run as root), with a real server
//! and a real client; what it wrote must hold every exchange.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use serde_json::Value;

use super::replay::{shadow, Behaviour};

pub(super) fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_shadowtap")
}

/// Whether this process may capture (root or CAP_NET_RAW); the tests say so and pass otherwise.
/// True (and says so) when this machine cannot capture on `lo`: the caller skips the test.
pub(super) fn capture_skipped() -> bool {
    let skipped = !can_capture();
    if skipped {
        eprintln!("skipped: no capture privilege here");
    }
    skipped
}

fn can_capture() -> bool {
    let out = Command::new(bin())
        .args([
            "capture",
            "-i",
            "lo",
            "-w",
            "/dev/null",
            "--duration",
            "10ms",
        ])
        .output();
    out.is_ok_and(|o| o.status.success())
}

/// `shadowtap capture -i lo -w FILE --port PORT ARGS`, returned once it says it is capturing
/// (so nothing sent afterwards is missed).
fn capture_lo(file: &std::path::Path, port: &str, args: &[&str]) -> std::process::Child {
    let mut child = Command::new(bin())
        .args([
            "capture",
            "-i",
            "lo",
            "-w",
            file.to_str().unwrap(),
            "--port",
            port,
        ])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    // `--user` says it dropped privileges first.
    while line.is_empty() || line.contains("dropped privileges") {
        line.clear();
        stderr.read_line(&mut line).unwrap();
    }
    assert!(line.contains("capturing on lo"), "{line}");
    child
}

#[test]
fn capture_on_loopback_records_every_exchange_and_stops_at_count() {
    if capture_skipped() {
        return;
    }
    let server = shadow(Behaviour::Answer(200));
    let port = server.url.rsplit(':').next().unwrap().to_string();
    let dir = std::env::temp_dir().join(format!("shadowtap-capture-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("lo.pcap");
    let mut child = capture_lo(
        &file,
        &port,
        &["--count", "4", "--duration", "20s", "--rotate-size", "1KiB"],
    );

    let mut conn = TcpStream::connect(server.url.trim_start_matches("http://")).unwrap();
    let requests = [
        "GET /one HTTP/1.1\r\nHost: t\r\n\r\n".to_string(),
        "GET /two HTTP/1.1\r\nHost: t\r\n\r\n".to_string(),
        "POST /three HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello".to_string(),
        "GET /four HTTP/1.1\r\nHost: t\r\n\r\n".to_string(),
    ];
    let mut reply = [0u8; 64];
    for r in &requests {
        conn.write_all(r.as_bytes()).unwrap();
        let n = conn.read(&mut reply).unwrap();
        assert!(n > 0);
    }
    drop(conn);

    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let status = child.wait();
        let mut out = String::new();
        let _ = child.stdout.take().map(|mut s| s.read_to_string(&mut out));
        let _ = tx.send((status, out));
    });
    let (status, summary) = rx
        .recv_timeout(Duration::from_secs(25))
        .expect("capture must stop at --count");
    assert!(status.unwrap().success());
    assert!(summary.contains("; 4 HTTP exchanges"), "{summary}");

    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // Rotation at 1 KiB spread the capture over several files; together they hold it all.
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path().to_string_lossy().into_owned())
        .filter(|p| p.contains("lo.pcap"))
        .collect();
    files.sort();
    assert!(files.len() >= 2, "{files:?}");
    let mut args = vec!["inspect".to_string(), "--format".into(), "jsonl".into()];
    args.extend(files);
    let out = Command::new(bin()).args(&args).output().unwrap();
    let uris: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["uri"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(uris, ["/one", "/two", "/three", "/four"]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn without_count_exchanges_are_counted_from_the_files_even_after_dropping_privileges() {
    if capture_skipped() {
        return;
    }
    let server = shadow(Behaviour::Answer(200));
    let port = server.url.rsplit(':').next().unwrap().to_string();
    let dir = std::env::temp_dir().join(format!("shadowtap-capture-user-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // Rotated files are created after the drop to `nobody`, who must be able to write here.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let file = dir.join("lo.pcap");
    let child = capture_lo(
        &file,
        &port,
        &[
            "--rotate-size",
            "1KiB",
            "--user",
            "nobody",
            "--duration",
            "20s",
        ],
    );
    let mut conn = TcpStream::connect(server.url.trim_start_matches("http://")).unwrap();
    let mut reply = [0u8; 64];
    for i in 0..5 {
        conn.write_all(format!("GET /n/{i} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
            .unwrap();
        assert!(conn.read(&mut reply).unwrap() > 0);
    }
    drop(conn);
    thread::sleep(Duration::from_millis(300));
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{summary}");
    // The first file was created as root, the others as nobody; all were read back.
    assert!(summary.contains("; 5 HTTP exchanges"), "{summary}");
    let files = std::fs::read_dir(&dir).unwrap().count();
    assert!(
        files >= 2 && summary.contains(&format!("to {files} files")),
        "{summary}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn capture_errors_are_one_line_with_exit_2() {
    let out = Command::new(bin())
        .args(["capture", "-i", "no-such-if0", "-w", "/dev/null"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("no-such-if0"), "{err}");
    let out = Command::new(bin())
        .args([
            "capture",
            "-i",
            "lo",
            "-w",
            "/dev/null",
            "--duration",
            "soon",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn without_capture_privilege_the_error_says_how_to_grant_it() {
    let commands: [&[&str]; 3] = [
        &[
            "capture",
            "-i",
            "lo",
            "-w",
            "/dev/null",
            "--duration",
            "10ms",
        ],
        &[
            "mirror",
            "-i",
            "lo",
            "--port",
            "1",
            "--shadow",
            "http://127.0.0.1:9",
            "--duration",
            "10ms",
        ],
        &["demo", "--live"],
    ];
    for args in commands {
        // Run the binary as `nobody` with every capability dropped (never setuid in-process).
        let out = Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "--inh-caps=-all",
                "--bounding-set=-all",
            ])
            .arg(bin())
            .args(args)
            .output();
        let Ok(out) = out else {
            eprintln!("skipped: setpriv is not installed");
            return;
        };
        let err = String::from_utf8_lossy(&out.stderr);
        if out.status.code() == Some(127) || err.contains("setpriv:") {
            eprintln!("skipped: setpriv cannot drop privileges here");
            return;
        }
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(
            err.contains("CAP_NET_RAW") && err.contains("setcap"),
            "{err}"
        );
        // Nothing else: not even demo --live's introduction.
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.is_empty(), "{args:?}: {stdout}");
    }
}

#[test]
fn any_rotated_file_left_by_an_earlier_run_is_refused_before_capturing() {
    if capture_skipped() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("shadowtap-capture-left-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("lo.pcap");
    // Not names a rotation writes: never refused.
    for other in [
        "lo.pcap.0",
        "lo.pcap.01",
        "lo.pcap.x",
        "lo.pcap.3.bak",
        "lo.pcapx.3",
    ] {
        std::fs::write(dir.join(other), b"keep").unwrap();
    }
    let run = |extra: &[&str]| {
        Command::new(bin())
            .args(["capture", "-i", "lo", "-w", file.to_str().unwrap()])
            .args([
                "--port",
                "9",
                "--rotate-size",
                "1KiB",
                "--duration",
                "200ms",
            ])
            .args(extra)
            .output()
            .unwrap()
    };
    let out = run(&[]);
    assert!(out.status.success(), "{out:?}");
    std::fs::remove_file(&file).unwrap();

    // PATH.3 and PATH.7, not PATH.1: the first one is named, nothing is created.
    std::fs::write(dir.join("lo.pcap.7"), b"earlier").unwrap();
    std::os::unix::fs::symlink("/nonexistent", dir.join("lo.pcap.3")).unwrap();
    let out = run(&[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("lo.pcap.3") && err.contains("--force"),
        "{err}"
    );
    assert!(!file.exists(), "the capture must not start");
    assert_eq!(std::fs::read(dir.join("lo.pcap.7")).unwrap(), b"earlier");

    // --force starts anyway.
    let out = run(&["--force"]);
    assert!(out.status.success(), "{out:?}");
    assert!(file.exists());
    let _ = std::fs::remove_dir_all(&dir);
}
