//! The HTML report in a real browser: headless Chromium loads the page from a file, with
//! its console logged; nothing may be logged, and the DOM it renders must hold the verdict,
//! both plots and the route table. Fails (never skips) without Chromium: CI installs it.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::inspect::fixture;
use super::replay::{shadow, Behaviour};

/// The browser: Debian's `chromium`.
fn chromium() -> &'static str {
    for path in ["/usr/bin/chromium", "/usr/bin/chromium-browser"] {
        if Path::new(path).exists() {
            return path;
        }
    }
    panic!("chromium is not installed (apt-get install chromium): the HTML report is tested in a real browser");
}

/// Chromium's `--dump-dom` of `page`, and what it logged; killed after 60 s.
fn render(page: &Path, profile: &Path) -> (String, String) {
    let mut child = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", page.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting chromium");
    let started = Instant::now();
    while child.try_wait().expect("waiting for chromium").is_none() {
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("chromium did not finish in 60 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("chromium output");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_html_report_renders_in_a_browser_with_its_verdict_plots_and_routes() {
    let s = shadow(Behaviour::Answer(503));
    let dir = std::env::temp_dir().join(format!("shadowtap-html-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (json, page) = (dir.join("run.json"), dir.join("run.html"));
    let out = Command::new(env!("CARGO_BIN_EXE_shadowtap"))
        .args([
            "replay",
            &fixture("keepalive-ethernet.pcap"),
            "--shadow",
            &s.url,
        ])
        .args(["--speed", "max", "--report-json"])
        .arg(&json)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(env!("CARGO_BIN_EXE_shadowtap"))
        .arg("report")
        .arg(&json)
        .args(["--format", "html", "--output"])
        .arg(&page)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (dom, log) = render(&page, &dir.join("profile"));
    let _ = std::fs::remove_dir_all(&dir);
    // A page with no scripts logs nothing to its console; anything there is a fault.
    let console: Vec<&str> = log.lines().filter(|l| l.contains(":CONSOLE")).collect();
    assert!(console.is_empty(), "console: {console:#?}");
    assert!(dom.contains("<section id=\"verdict\">"), "{dom}");
    assert!(dom.contains("Verdict: "), "{dom}");
    assert_eq!(dom.matches("<svg class=\"plot\"").count(), 2, "{dom}");
    assert!(dom.contains("<svg class=\"timeline\""), "{dom}");
    assert!(dom.contains("class=\"over-time\""), "{dom}");
    assert!(dom.contains("class=\"production\"") && dom.contains("class=\"shadow\""));
    assert!(dom.contains("<table id=\"route-table\">"), "{dom}");
    assert!(
        dom.contains("<td>GET /</td>") || dom.matches("<tr class=").count() >= 1,
        "{dom}"
    );
    assert!(dom.contains("<section id=\"run\">") && dom.contains("keepalive-ethernet.pcap"));
}
