#!/usr/bin/env python3
"""A/A calibration: replay a service's own traffic to that same service and see how far the
comparison is from "no change".

Usage: benches/aa.py [--runs 5] [--seconds 10] [--clients 4] [--rate 250]

nginx on 127.0.0.1 serves a 600-byte static file. CLIENTS keep-alive clients (Python
threads, each paced to RATE requests per second) drive it for SECONDS while `shadowtap
capture` records loopback. The capture is then replayed RUNS times at `--speed 1` to the
same nginx with `--allow-production-target` (shadowtap's own requests carry its marker and
are not production's). Each run's JSON report gives production's and the shadow's ttfb p50
and p99 and the verdicts. Printed: per run, the ratios shadow/production at p50 and p99 and
the whole run's verdict; then the median ratio over runs with its range, against the
targets: p50 within 10% (or 5 us, whichever is larger), p99 within 25%, and "no
significant change" in every run.

Needs root (live capture on lo), nginx (`apt-get install nginx-light`) and a release
build (`cargo build --release`).
"""
import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from loopback import free_port, nginx

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "shadowtap")


def client(port, rate, seconds, errors):
    """One keep-alive client sending GET /file.html RATE times a second for SECONDS."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    interval = 1.0 / rate
    start = time.monotonic()
    n = 0
    while True:
        due = start + n * interval
        now = time.monotonic()
        if due - start >= seconds:
            break
        if due > now:
            time.sleep(due - now)
        try:
            conn.request("GET", "/file.html")
            conn.getresponse().read()
        except OSError:
            errors.append(1)
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        n += 1
    conn.close()


def record(port, pcap, args):
    """Captures the clients' traffic to `port` on lo."""
    cap = subprocess.Popen([BIN, "capture", "-i", "lo", "--port", str(port), "-w", pcap, "--force"],
                           stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)
    errors = []
    threads = [threading.Thread(target=client, args=(port, args.rate, args.seconds, errors))
               for _ in range(args.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    time.sleep(0.5)
    cap.send_signal(2)
    _, err = cap.communicate(timeout=30)
    if errors:
        print(f"warning: {len(errors)} client errors while recording", file=sys.stderr)
    return err.strip()


def replay(port, pcap):
    out = subprocess.run([BIN, "replay", pcap, "--shadow", f"http://127.0.0.1:{port}",
                          "--speed", "1", "--allow-production-target", "--format", "json"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if out.returncode not in (0, 4):
        sys.exit(f"replay exited {out.returncode}: {out.stderr}")
    return json.loads(out.stdout)


def verdict(report):
    whole = [c for c in report["verdicts"] if c["route"] is None]
    changed = [f"{c['metric']} {c['verdict']}" for c in whole
               if c["verdict"] in ("regression", "improvement")]
    return ", ".join(changed) or "no significant change"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--rate", type=float, default=250)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = os.path.join(tmp, "www")
        os.makedirs(root)
        with open(os.path.join(root, "file.html"), "w") as f:
            f.write("x" * 600)
        port = free_port()
        servers = f"    server {{ listen 127.0.0.1:{port}; root {root}; }}"
        with nginx(tmp, servers):
            pcap = os.path.join(tmp, "aa.pcap")
            print(record(port, pcap, args))
            rows = []
            for i in range(args.runs):
                r = replay(port, pcap)
                p, s = r["production"]["ttfb_us"], r["shadow"]["ttfb_us"]
                rows.append((p["p50"], s["p50"], p["p99"], s["p99"], verdict(r)))
                print(f"run {i + 1}: {r['counts']['replayed']} replayed; ttfb p50 {p['p50']} -> {s['p50']} us, "
                      f"p99 {p['p99']} -> {s['p99']} us; {rows[-1][4]}")
    r50 = [s / p for p, s, _, _, _ in rows]
    r99 = [s / p for _, _, p, s, _ in rows]
    d50 = [abs(s - p) for p, s, _, _, _ in rows]
    med50, med99 = statistics.median(r50), statistics.median(r99)
    ok50 = abs(med50 - 1) <= 0.10 or statistics.median(d50) <= 5
    ok99 = abs(med99 - 1) <= 0.25
    ok_verdicts = all(v == "no significant change" for *_, v in rows)
    print(f"p50 shadow/production: median {med50:.2f} (range {min(r50):.2f}-{max(r50):.2f}), "
          f"target within 10% or 5 us: {'met' if ok50 else 'MISSED'}")
    print(f"p99 shadow/production: median {med99:.2f} (range {min(r99):.2f}-{max(r99):.2f}), "
          f"target within 25%: {'met' if ok99 else 'MISSED'}")
    print(f"verdicts: {'no significant change in every run' if ok_verdicts else 'a change was called: MISSED'}")


if __name__ == "__main__":
    main()
