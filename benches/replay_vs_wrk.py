#!/usr/bin/env python3
"""Replay throughput against the same local target as wrk (and oha when installed), in one run.

Usage: benches/replay_vs_wrk.py [--size-mb 300] [--runs 5] [--seconds 10] [--schedule-runs 5]
                                [--baseline OTHER_SHADOWTAP]...

Starts nginx on 127.0.0.1 returning 204 to everything (needs `apt-get install nginx-light
wrk`; `cargo install oha` for the second reference), measures wrk and oha at 64 keep-alive
connections, then `shadowtap replay CAPTURE --shadow URL --speed max --concurrency 64` on two
generated keep-alive captures (`cargo run --release --example gencap`, 256 connections open
at a time). It runs in rounds, each tool once per round, and prints each tool's median
requests per second, the median and range of its ratio to wrk in the same round, and the
most connections it had open to nginx (every tool is watched the same way, so the watching
costs each the same), then the schedule error of `--speed 1` replays of the bundled demo
capture against the same nginx (p50, p99 and max per run):

- "204 capture": a recording of the same service (GETs answered `204 No Content`), so the
  replay does what wrk does plus reading and decoding the capture;
- "page capture": the same GETs answered with a 2.8 KB HTML page, so the reader decodes
  about ten times as many bytes per request.

`--baseline` (repeatable) adds another shadowtap binary (an older build) to every round, on
both captures, named by its file name, so a before/after comparison sees the same machine
drift.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from loopback import CONNECTIONS, free_port, nginx, wrk

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "benches", "out")
# One nginx server answering 204 to everything.
SERVERS = "    server {{ listen 127.0.0.1:{port}; location / {{ return 204; }} }}"


def connections_to(port):
    """Established TCP connections to 127.0.0.1:port, read from /proc/net/tcp (spawning `ss`
    every sample would take CPU from the replay being measured)."""
    peer = f"0100007F:{port:04X}"
    with open("/proc/net/tcp") as f:
        next(f)
        fields = (line.split() for line in f)
        return sum(1 for f in fields if f[3] == "01" and f[2] == peer)


def oha(url, seconds):
    out = subprocess.run(["oha", "--no-tui", "--output-format", "json", "-c", str(CONNECTIONS), "-z", f"{seconds}s", url],
                         stdout=subprocess.PIPE, text=True, check=True).stdout
    return float(json.loads(out)["summary"]["requestsPerSec"])


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


class Watch:
    """Samples, every 100 ms while a tool runs, the connections open to nginx and (given a
    process) its resident memory. Every tool is watched the same way, so the sampling costs
    each the same CPU."""

    def __init__(self, port):
        self.port, self.pid, self.peak, self.rss = port, None, 0, []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run)

    def run(self):
        while not self.stop.is_set():
            self.peak = max(self.peak, connections_to(self.port))
            r = rss_kib(self.pid) if self.pid else None
            if r:
                self.rss.append(r)
            time.sleep(0.1)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *_):
        self.stop.set()
        self.thread.join()


def replay(shadowtap, capture, url, watch):
    """Requests per second and requests of one replay (the whole command's run)."""
    start = time.perf_counter()
    proc = subprocess.Popen([shadowtap, "replay", capture, "--shadow", url, "--speed", "max",
                             "--concurrency", str(CONNECTIONS), "--format", "json", "--progress", "never"],
                            stdout=subprocess.PIPE)
    watch.pid = proc.pid
    out, _ = proc.communicate()
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"bench: shadowtap replay failed with {proc.returncode}")
    report = json.loads(out)
    return report["counts"]["replayed"] / elapsed, report["counts"]["replayed"]


def lateness(shadowtap, url):
    """The schedule error (actual minus intended send time) of a --speed 1 replay of the
    demo capture, from the report."""
    demo = os.path.join(ROOT, "assets", "demo.pcap")
    out = subprocess.run([shadowtap, "replay", demo, "--shadow", url, "--format", "json", "--progress", "never"],
                         stdout=subprocess.PIPE, check=True).stdout
    return json.loads(out)["schedule"]["lateness_us"]


def flat(rss):
    """Most resident memory in the first and in the last quarter of the run (MiB)."""
    if len(rss) < 8:
        # Under a second: the first samples would be of the process starting up.
        return f"peak RSS {max(rss, default=0) / 1024:.0f} MiB"
    q = len(rss) // 4
    return f"RSS {max(rss[:q]) / 1024:.0f} MiB in the first quarter, {max(rss[-q:]) / 1024:.0f} MiB in the last"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mb", type=int, default=300)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--schedule-runs", type=int, default=5)
    ap.add_argument("--baseline", action="append", default=[],
                    help="another shadowtap binary, replayed in the same rounds (repeatable)")
    args = ap.parse_args()
    for tool in ("nginx", "wrk"):
        if not shutil.which(tool):
            sys.exit(f"bench: {tool} is missing (apt-get install nginx-light wrk)")
    os.makedirs(OUT, exist_ok=True)
    subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "shadowtap", "--example", "gencap"],
                   cwd=ROOT, check=True)
    shadowtap = os.path.join(ROOT, "target", "release", "shadowtap")
    # 256 captured connections open at a time: requests of one connection are replayed in
    # order, so the capture's own concurrency bounds the replay's.
    captures = []
    for name, body, size in (("204 capture", "0", args.size_mb), ("page capture", "page", args.size_mb)):
        path = os.path.join(OUT, f"replay-{size}mb-256conns-{body}.pcap")
        if not os.path.exists(path):
            subprocess.run([os.path.join(ROOT, "target", "release", "examples", "gencap"), path,
                            str(size), "0", "256", body], check=True)
        captures.append((name, path))
    port = free_port()
    tools = [("wrk", None)] + ([("oha", None)] if shutil.which("oha") else [])
    binaries = {}
    for name, capture in captures:
        binaries[f"shadowtap, {name}"] = shadowtap
        for other in args.baseline:
            # The path when its file name is this build's own: two builds must not share a row.
            label = os.path.basename(other)
            if label == "shadowtap":
                label = other
            binaries[f"{label}, {name}"] = other
    tools += [(tool, capture) for name, capture in captures for tool in binaries if tool.endswith(name)]
    rates = {name: [] for name, _ in tools}
    notes = {name: [] for name, _ in tools}
    with tempfile.TemporaryDirectory() as tmp, nginx(tmp, SERVERS.format(port=port)):
        url = f"http://127.0.0.1:{port}/"
        # Round by round, every tool once per round: this machine's speed drifts over a
        # minute, so each tool is compared with wrk measured next to it.
        for _ in range(args.runs):
            for name, capture in tools:
                requests = None
                with Watch(port) as watch:
                    if name == "wrk":
                        rates[name].append(wrk(url, args.seconds))
                    elif name == "oha":
                        rates[name].append(oha(url, args.seconds))
                    else:
                        rate, requests = replay(binaries[name], capture, url.rstrip("/"), watch)
                        rates[name].append(rate)
                notes[name].append((requests, watch.peak, watch.rss))
        # The schedule at --speed 1: the bundled demo capture (800 requests over 8 s, a real
        # recording) against the same nginx, which keeps up.
        schedule = [lateness(shadowtap, url.rstrip("/")) for _ in range(args.schedule_runs)]
    print(f"nginx returning 204 on loopback, {CONNECTIONS} connections, median of {args.runs} rounds")
    print(f"  {'tool':<34} {'req/s':>10} {'x wrk':>7} {'range':>11}")
    for name, _ in tools:
        ratios = [r / w for r, w in zip(rates[name], rates["wrk"])]
        requests, _, rss = notes[name][-1]
        note = f"  at most {max(n[1] for n in notes[name])} connections"
        if requests:
            note += f", {requests} requests, {flat(rss)}"
        print(f"  {name:<34} {statistics.median(rates[name]):10.0f} {statistics.median(ratios):7.2f} "
              f"{min(ratios):5.2f}-{max(ratios):4.2f}{note}")
    print(f"schedule error at --speed 1 (demo capture, {len(schedule)} runs), microseconds:")
    for key in ("p50", "p99", "max"):
        print(f"  {key:<4} " + " ".join(f"{run[key]:>7}" for run in schedule))

if __name__ == "__main__":
    main()
