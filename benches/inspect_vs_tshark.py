#!/usr/bin/env python3
"""Time `shadowtap inspect --format jsonl > /dev/null` on large generated captures, side by side
with a raw libpcap iteration loop (the floor for any reader) and tshark, in the same run.

Usage: benches/inspect_vs_tshark.py [--size-mb 1024] [--runs 5] [--tshark-runs 1] [--no-tshark]

Makes two captures with `cargo run --release --example gencap` (cached in benches/out/):
  loopback  every message in one packet (as on loopback's 64 KiB MTU)
  segmented messages cut into 1448-byte segments (as on a real network)
and prints, per capture and tool: median wall time, throughput (MB/s of capture), peak RSS,
and the ratio to the raw loop and to tshark. Needs gcc and libpcap-dev; tshark is optional.
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "benches", "out")

RAW_LOOP_C = r"""
#include <pcap.h>
#include <stdio.h>
int main(int argc, char **argv) {
    char err[PCAP_ERRBUF_SIZE];
    pcap_t *p = pcap_open_offline(argv[1], err);
    if (!p) { fprintf(stderr, "%s\n", err); return 1; }
    struct pcap_pkthdr *h; const u_char *d; unsigned long n = 0, bytes = 0;
    while (pcap_next_ex(p, &h, &d) == 1) { n++; bytes += h->caplen; }
    printf("%lu packets %lu bytes\n", n, bytes);
    return 0;
}
"""


GNU_TIME = "/usr/bin/time"


def run_measured(cmd):
    """Runs cmd with stdout to /dev/null; returns (seconds, peak RSS in MB). The RSS comes from
    GNU time when present: a child forked from this Python process would otherwise report the
    interpreter's pages as its own peak."""
    rss_file = os.path.join(OUT, "rss.txt")
    wrapped = [GNU_TIME, "-f", "%M", "-o", rss_file] + cmd if os.path.exists(GNU_TIME) else cmd
    start = time.perf_counter()
    with open(os.devnull, "wb") as null:
        proc = subprocess.Popen(wrapped, stdout=null, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"bench: {' '.join(cmd)} failed")
    if wrapped is not cmd:
        with open(rss_file) as f:
            return elapsed, int(f.read().split()[-1]) / 1024.0
    return elapsed, usage.ru_maxrss / 1024.0


def median_run(cmd, runs):
    results = [run_measured(cmd) for _ in range(runs)]
    return statistics.median(r[0] for r in results), max(r[1] for r in results)


def count_lines(cmd):
    """Counts the lines cmd prints, streaming, so this process stays small: a forked child's
    peak RSS includes the parent's pages until it execs."""
    lines = 0
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL) as proc:
        while chunk := proc.stdout.read(1 << 20):
            lines += chunk.count(b"\n")
    if proc.returncode != 0:
        sys.exit(f"bench: {' '.join(cmd)} failed")
    return lines


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mb", type=int, default=1024)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--tshark-runs", type=int, default=1)
    ap.add_argument("--no-tshark", action="store_true")
    args = ap.parse_args()

    os.makedirs(OUT, exist_ok=True)
    subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "shadowtap", "--example", "gencap"],
                   cwd=ROOT, check=True)
    shadowtap = os.path.join(ROOT, "target", "release", "shadowtap")
    gencap = os.path.join(ROOT, "target", "release", "examples", "gencap")
    raw_loop = os.path.join(OUT, "raw_loop")
    src = raw_loop + ".c"
    with open(src, "w") as f:
        f.write(RAW_LOOP_C)
    subprocess.run(["gcc", "-O2", "-o", raw_loop, src, "-lpcap"], check=True)
    tshark = None if args.no_tshark else shutil.which("tshark")

    for variant, mss in (("loopback", "0"), ("segmented", "1448")):
        path = os.path.join(OUT, f"bench-{variant}-{args.size_mb}mb.pcap")
        if not os.path.exists(path) or not os.path.exists(path + ".requests"):
            made = subprocess.run([gencap, path, str(args.size_mb), mss], check=True,
                                  stderr=subprocess.PIPE, text=True).stderr
            with open(path + ".requests", "w") as f:
                f.write(made.split()[-2])
        with open(path + ".requests") as f:
            expected = int(f.read())
        size_mb = os.path.getsize(path) / 1e6
        found = count_lines([shadowtap, "inspect", "--format", "jsonl", path])
        verdict = "all found" if found == expected else f"MISSING {expected - found}"
        print(f"\n{variant}: {path} ({size_mb:.0f} MB), {expected} requests, "
              f"shadowtap finds {found} exchanges ({verdict})")
        rows = []
        raw_t, raw_rss = median_run([raw_loop, path], args.runs)
        rows.append(("raw libpcap loop", raw_t, raw_rss))
        st_t, st_rss = median_run([shadowtap, "inspect", "--format", "jsonl", path], args.runs)
        rows.append(("shadowtap inspect", st_t, st_rss))
        ts_t = None
        if tshark:
            ts_t, ts_rss = median_run([tshark, "-r", path, "-Y", "http.request", "-T", "fields",
                                       "-e", "http.request.uri"], args.tshark_runs)
            rows.append(("tshark", ts_t, ts_rss))
        print(f"  {'tool':<20} {'time s':>8} {'MB/s':>8} {'RSS MB':>8}")
        for name, t, rss in rows:
            print(f"  {name:<20} {t:8.2f} {size_mb / t:8.0f} {rss:8.0f}")
        print(f"  shadowtap / raw loop time: {st_t / raw_t:.2f}x")
        if ts_t:
            print(f"  tshark / shadowtap time:   {ts_t / st_t:.1f}x")


if __name__ == "__main__":
    main()
