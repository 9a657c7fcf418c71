//! Output files as the binary creates them (RELIABILITY.md S08, R11): real files in temporary
//! directories, and for a full disk a real 64 KiB tmpfs (the tests run as root; without
//! permission to mount, the full-disk tests say so and pass).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::capture::{bin, capture_skipped};
use super::inspect::fixture;
use super::mirror::{exchange, production};
use super::replay::{shadow, Behaviour};
use crate::support::schema::schema_errors;

/// A fresh directory of its own under the system's temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir = std::env::temp_dir().join(format!(
            "shadowtap-outputs-{name}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A 64 KiB tmpfs mounted on a fresh directory: a disk that fills up for real. Unmounted
/// (lazily, so a file still open cannot keep it) on drop.
struct Tmpfs {
    dir: TempDir,
}

impl Tmpfs {
    /// None (and says so) where mounting is not permitted: the caller skips the test.
    fn mount(name: &str) -> Option<Tmpfs> {
        let dir = TempDir::new(name);
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs"])
            .arg(&dir.0)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("skipped: cannot mount a tmpfs here");
            return None;
        }
        Some(Tmpfs { dir })
    }

    fn join(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Fills the file system to the last byte.
    fn fill(&self) {
        let mut f = std::fs::File::create(self.join("filler")).unwrap();
        let block = [0u8; 4096];
        while f.write_all(&block).is_ok() {}
        while f.write_all(&block[..1]).is_ok() {}
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir.0).status();
    }
}

fn run(args: &[&str]) -> Output {
    Command::new(bin()).args(args).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap()
        .permissions()
        .mode()
        & 0o777
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The bundled demo capture: 800 requests, enough to fill 64 KiB of log.
fn demo_pcap() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("assets/demo.pcap")
        .to_string_lossy()
        .into_owned()
}

/// `replay FILE --shadow URL --speed max --progress never ARGS`.
fn replay(file: &str, url: &str, args: &[&str]) -> Output {
    let mut all = vec![
        "replay",
        file,
        "--shadow",
        url,
        "--speed",
        "max",
        "--progress",
        "never",
    ];
    all.extend_from_slice(args);
    run(&all)
}

#[test]
fn outputs_are_created_0600_whatever_the_umask() {
    let server = shadow(Behaviour::Answer(200));
    let dir = TempDir::new("mode");
    for umask in ["000", "277"] {
        let (log, report, merged) = (
            dir.join(&format!("{umask}.jsonl")),
            dir.join(&format!("{umask}.json")),
            dir.join(&format!("{umask}.txt")),
        );
        let script = format!(
            "umask {umask} && \"$0\" replay {} --shadow {} --speed max --progress never --log {} --report-json {} >/dev/null && \"$0\" report {} --output {}",
            fixture("keepalive-ethernet.pcap"),
            server.url,
            s(&log),
            s(&report),
            s(&report),
            s(&merged)
        );
        let out = Command::new("sh")
            .args(["-c", &script, bin()])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        for path in [&log, &report, &merged] {
            assert_eq!(mode(path), 0o600, "umask {umask}: {}", path.display());
        }
    }
}

#[test]
fn an_existing_log_is_refused_in_one_line_with_exit_2_and_left_alone() {
    let server = shadow(Behaviour::Answer(200));
    let dir = TempDir::new("exists");
    let log = dir.join("run.jsonl");
    std::fs::write(&log, "someone else's\n").unwrap();
    let out = replay(
        &fixture("keepalive-ethernet.pcap"),
        &server.url,
        &["--log", s(&log)],
    );
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(s(&log)) && err.contains("--force"), "{err}");
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "someone else's\n");
    assert!(
        server.seen.lock().unwrap().is_empty(),
        "nothing is sent when an output is refused"
    );
}

#[test]
fn force_replaces_an_existing_log_with_a_new_0600_file() {
    let server = shadow(Behaviour::Answer(200));
    let dir = TempDir::new("force");
    let log = dir.join("run.jsonl");
    std::fs::write(&log, "old\n").unwrap();
    std::fs::set_permissions(&log, std::fs::Permissions::from_mode(0o666)).unwrap();
    // A second name keeps the old file alive (and its inode number taken), as a file another
    // user still holds would be.
    let held = dir.join("held");
    std::fs::hard_link(&log, &held).unwrap();
    let old_inode = std::fs::metadata(&log).unwrap().ino();
    let out = replay(
        &fixture("keepalive-ethernet.pcap"),
        &server.url,
        &["--log", s(&log), "--force"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let meta = std::fs::metadata(&log).unwrap();
    assert_ne!(
        meta.ino(),
        old_inode,
        "a new file, not the old one truncated"
    );
    assert_eq!(mode(&log), 0o600);
    assert_eq!(std::fs::read_to_string(&held).unwrap(), "old\n");
    let lines = std::fs::read_to_string(&log).unwrap();
    assert!(!lines.is_empty() && !lines.contains("old"), "{lines}");
    for line in lines.lines() {
        serde_json::from_str::<Value>(line).unwrap();
    }
}

#[test]
fn a_link_at_a_stream_path_is_refused_and_with_force_removed_never_followed() {
    let server = shadow(Behaviour::Answer(200));
    let dir = TempDir::new("link");
    let victim = dir.join("victim");
    std::fs::write(&victim, "precious\n").unwrap();
    let log = dir.join("run.jsonl");
    std::os::unix::fs::symlink(&victim, &log).unwrap();
    let capture = fixture("keepalive-ethernet.pcap");

    let out = replay(&capture, &server.url, &["--log", s(&log)]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(std::fs::symlink_metadata(&log).unwrap().is_symlink());
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");

    let out = replay(&capture, &server.url, &["--log", s(&log), "--force"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let meta = std::fs::symlink_metadata(&log).unwrap();
    assert!(meta.is_file(), "the link itself was replaced by a file");
    assert_eq!(mode(&log), 0o600);
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");

    // `capture -w` and `mirror --save-pcap` open their files the same way.
    if capture_skipped() {
        return;
    }
    let pcap = dir.join("live.pcap");
    std::os::unix::fs::symlink(&victim, &pcap).unwrap();
    let live: [&[&str]; 2] = [
        &["capture", "-i", "lo", "-w", s(&pcap), "--duration", "10ms"],
        &[
            "mirror",
            "-i",
            "lo",
            "--port",
            "1",
            "--shadow",
            &server.url,
            "--save-pcap",
            s(&pcap),
            "--duration",
            "10ms",
        ],
    ];
    for args in live {
        let out = run(args);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(s(&pcap)), "{err}");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
    }
    let out = run(&[
        "capture",
        "-i",
        "lo",
        "-w",
        s(&pcap),
        "--duration",
        "10ms",
        "--force",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(std::fs::symlink_metadata(&pcap).unwrap().is_file());
    assert_eq!(mode(&pcap), 0o600);
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
}

#[test]
fn force_never_replaces_what_is_not_a_file_or_a_link() {
    let server = shadow(Behaviour::Answer(200));
    let dir = TempDir::new("notfile");
    let sub = dir.join("a-directory");
    std::fs::create_dir(&sub).unwrap();
    let out = replay(
        &fixture("keepalive-ethernet.pcap"),
        &server.url,
        &["--log", s(&sub), "--force"],
    );
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("not a regular file"), "{err}");
    assert!(sub.is_dir());
}

#[test]
fn reports_replace_a_link_at_their_path_without_writing_through_it() {
    let server = shadow(Behaviour::Answer(200));
    let dir = TempDir::new("report-link");
    let victim = dir.join("victim");
    std::fs::write(&victim, "precious\n").unwrap();
    let report = dir.join("run.json");
    let merged = dir.join("merged.txt");
    std::os::unix::fs::symlink(&victim, &report).unwrap();
    std::os::unix::fs::symlink(&victim, &merged).unwrap();

    let out = replay(
        &fixture("keepalive-ethernet.pcap"),
        &server.url,
        &["--report-json", s(&report)],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(std::fs::symlink_metadata(&report).unwrap().is_file());
    assert_eq!(mode(&report), 0o600);
    let json: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert!(json["counts"]["replayed"].as_u64().unwrap() > 0);

    let out = run(&["report", s(&report), "--output", s(&merged)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(std::fs::symlink_metadata(&merged).unwrap().is_file());
    assert_eq!(mode(&merged), 0o600);
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");

    // A rerun replaces the report (no refusal, no --force), and leaves nothing beside it.
    let out = replay(
        &fixture("keepalive-ethernet.pcap"),
        &server.url,
        &["--report-json", s(&report)],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(dir.names(), ["merged.txt", "run.json", "victim"]);
}

#[test]
fn demo_writes_no_file_at_all() {
    let tmp = TempDir::new("demo-tmpdir");
    let mut child = Command::new(bin())
        .arg("demo")
        .env("TMPDIR", &tmp.0)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let reader = thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    // Watched while it runs (the bundled capture was once written there and removed at the
    // end), within a bound.
    let mut seen = std::collections::BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        seen.extend(tmp.names());
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "demo did not finish");
        thread::sleep(Duration::from_millis(5));
    };
    let report = reader.join().unwrap();
    assert!(status.success());
    assert!(report.contains("GET /api/orders/{id}"), "{report}");
    seen.extend(tmp.names());
    assert!(seen.is_empty(), "demo wrote {seen:?}");
}

#[test]
fn a_log_on_a_full_disk_is_counted_reported_and_exits_1() {
    let Some(disk) = Tmpfs::mount("log") else {
        return;
    };
    let server = shadow(Behaviour::Answer(200));
    let dir = TempDir::new("log-report");
    let log = disk.join("run.jsonl");
    let report = dir.join("run.json");
    let out = replay(
        &demo_pcap(),
        &server.url,
        &[
            "--concurrency",
            "8",
            "--log",
            s(&log),
            "--report-json",
            s(&report),
        ],
    );
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(s(&log)) && stderr.contains("No space left on device"),
        "{stderr}"
    );
    // The report came first, with the log's line.
    assert!(stdout.contains("requests"), "{stdout}");
    let line = stdout
        .lines()
        .find(|l| l.starts_with("log "))
        .unwrap_or_else(|| panic!("no log line: {stdout}"));
    assert!(line.contains("not written"), "{line}");

    let json: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(schema_errors(&json), Vec::<String>::new());
    let entry = &json["outputs"]["log"];
    let (written, failed) = (
        entry["lines_written"].as_u64().unwrap(),
        entry["lines_failed"].as_u64().unwrap(),
    );
    assert!(written > 0 && failed > 0, "{entry}");
    assert_eq!(
        written + failed,
        json["counts"]["replayed"].as_u64().unwrap()
    );
    assert!(
        entry["error"].as_str().unwrap().contains(s(&log)),
        "{entry}"
    );
    // The file holds exactly the lines counted as written, each whole.
    let kept = std::fs::read_to_string(&log).unwrap();
    assert!(kept.ends_with('\n'));
    assert_eq!(kept.lines().count() as u64, written);
    for l in kept.lines() {
        serde_json::from_str::<Value>(l).unwrap();
    }
}

#[test]
fn a_report_on_a_full_disk_keeps_the_previous_one_prints_the_text_first_and_exits_1() {
    let Some(disk) = Tmpfs::mount("report") else {
        return;
    };
    let server = shadow(Behaviour::Answer(200));
    let report = disk.join("run.json");
    let merged = disk.join("merged.txt");
    std::fs::write(&report, "{\"previous\": true}\n").unwrap();
    std::fs::write(&merged, "previous\n").unwrap();
    disk.fill();

    let out = replay(
        &fixture("keepalive-ethernet.pcap"),
        &server.url,
        &["--report-json", s(&report)],
    );
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stdout.contains("shadowtap replay"),
        "the text report: {stdout}"
    );
    assert!(
        stderr.contains(s(&report)) && stderr.contains("No space left on device"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(&report).unwrap(),
        "{\"previous\": true}\n"
    );

    let source = TempDir::new("report-source");
    let saved = source.join("a.json");
    let out = replay(
        &fixture("keepalive-ethernet.pcap"),
        &server.url,
        &["--report-json", s(&saved)],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = run(&["report", s(&saved), "--output", s(&merged)]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(s(&merged)), "{stderr}");
    assert_eq!(std::fs::read_to_string(&merged).unwrap(), "previous\n");
    // No temporary file left behind either.
    assert_eq!(disk.dir.names(), ["filler", "merged.txt", "run.json"]);
}

/// Requests to `addr` on one keep-alive connection, each with a 4 KiB header so that 64 KiB
/// of capture fills quickly.
fn traffic(addr: std::net::SocketAddr, requests: usize) {
    let mut conn = TcpStream::connect(addr).unwrap();
    let padding = "x".repeat(4096);
    for i in 0..requests {
        let raw = format!("GET /r/{i} HTTP/1.1\r\nHost: t\r\nX-Pad: {padding}\r\n\r\n");
        exchange(&mut conn, &raw, 1);
    }
}

#[test]
fn capture_on_a_full_disk_stops_with_its_summary_names_the_file_and_exits_1() {
    if capture_skipped() {
        return;
    }
    let Some(disk) = Tmpfs::mount("capture") else {
        return;
    };
    let prod = production("127.0.0.1:0");
    let file = disk.join("live.pcap");
    let port = prod.port().to_string();
    let child = Command::new(bin())
        .args(["capture", "-i", "lo", "-w", s(&file), "--port", &port])
        .args(["--duration", "20s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    thread::sleep(Duration::from_millis(500));
    traffic(prod, 40);
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("capture must end")
        .unwrap();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stdout.starts_with("captured "), "the summary: {stdout}");
    assert!(
        stderr.contains(s(&file)) && stderr.contains("No space left on device"),
        "{stderr}"
    );
    // What was kept ends on a whole record: it reads without a warning.
    let out = run(&["inspect", s(&file)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        !text(&out.stderr).contains("warning"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn mirror_with_save_pcap_on_a_full_disk_reports_first_and_exits_1() {
    if capture_skipped() {
        return;
    }
    let Some(disk) = Tmpfs::mount("mirror") else {
        return;
    };
    let prod = production("127.0.0.1:0");
    let server = shadow(Behaviour::Answer(200));
    let file = disk.join("saved.pcap");
    let port = prod.port().to_string();
    let mut child = Command::new(bin())
        .args([
            "mirror",
            "-i",
            "lo",
            "--port",
            &port,
            "--shadow",
            &server.url,
        ])
        .args([
            "--save-pcap",
            s(&file),
            "--format",
            "json",
            "--duration",
            "4s",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    thread::sleep(Duration::from_millis(500));
    traffic(prod, 40);
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut out = String::new();
        let _ = stdout.read_to_string(&mut out);
        let _ = tx.send((child.wait_with_output(), out));
    });
    let (status, report) = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("mirror must end");
    let out = status.unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(s(&file)) && stderr.contains("No space left on device"),
        "{stderr}"
    );
    let json: Value = serde_json::from_str(&report).unwrap_or_else(|e| panic!("{e}: {report}"));
    assert_eq!(schema_errors(&json), Vec::<String>::new());
    assert_eq!(json["counts"]["replayed"], 40, "the mirror went on");
    assert!(
        stderr.contains("saving stops, mirroring goes on"),
        "said when it happened: {stderr}"
    );
    let saved = &json["outputs"]["save_pcap"];
    assert!(saved["packets_failed"].as_u64().unwrap() > 0, "{saved}");
    assert!(
        saved["error"].as_str().unwrap().contains(s(&file)),
        "{saved}"
    );
}

#[test]
fn a_rotated_file_left_by_an_earlier_capture_is_refused_at_the_start_unless_force() {
    if capture_skipped() {
        return;
    }
    let dir = TempDir::new("rotate");
    let base = dir.join("live.pcap");
    let earlier = dir.join("live.pcap.1");
    std::fs::write(&earlier, "an earlier run's\n").unwrap();
    let args = [
        "capture",
        "-i",
        "lo",
        "-w",
        s(&base),
        "--rotate-size",
        "1KiB",
        "--duration",
        "10ms",
    ];
    let out = run(&args);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains(s(&earlier)), "{err}");
    assert!(!base.exists(), "nothing was created");
    assert_eq!(
        std::fs::read_to_string(&earlier).unwrap(),
        "an earlier run's\n"
    );
    let mut forced = args.to_vec();
    forced.push("--force");
    let out = run(&forced);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(mode(&base), 0o600);
}

#[test]
fn an_output_that_cannot_be_created_stops_the_run_before_it_starts_and_leaves_nothing() {
    let server = shadow(Behaviour::Answer(200));
    let dir = TempDir::new("uncreatable");
    let log = dir.join("run.jsonl");
    let missing = dir.join("no-such-dir/run.json");
    let out = replay(
        &fixture("keepalive-ethernet.pcap"),
        &server.url,
        &["--log", s(&log), "--report-json", s(&missing)],
    );
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(s(&missing)), "{err}");
    assert!(server.seen.lock().unwrap().is_empty());
    // Nothing left in the way of the next run.
    assert!(dir.names().is_empty(), "{:?}", dir.names());

    if capture_skipped() {
        return;
    }
    let saved = dir.join("saved.pcap");
    let out = run(&[
        "mirror",
        "-i",
        "lo",
        "--port",
        "1",
        "--shadow",
        &server.url,
        "--save-pcap",
        s(&saved),
        "--log",
        s(&missing),
        "--duration",
        "10ms",
    ]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains(s(&missing)), "{err}");
    assert!(dir.names().is_empty(), "{:?}", dir.names());
}

#[test]
fn a_stdout_that_cannot_be_written_does_not_lose_the_side_outputs() {
    // `| head` that has gone, or stdout on a full disk: the report file and the log are still
    // put in place, then the run fails (exit 1) naming standard output.
    let dir = TempDir::new("stdout");
    let (report, log) = (dir.join("r.json"), dir.join("log.jsonl"));
    let server = shadow(Behaviour::Answer(200));
    let args = [
        "replay",
        &demo_pcap(),
        "--shadow",
        &server.url,
        "--speed",
        "max",
        "--progress",
        "never",
        "--report-json",
        s(&report),
        "--log",
        s(&log),
    ]
    .map(|a| a.to_string());
    let out = Command::new(bin())
        .args(&args)
        .stdout(std::fs::File::create("/dev/full").unwrap())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("standard output"), "{err}");
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(saved["counts"]["replayed"], 759, "{}", saved["counts"]);
    assert_eq!(std::fs::read_to_string(&log).unwrap().lines().count(), 759);
}
