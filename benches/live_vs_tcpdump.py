#!/usr/bin/env python3
"""What live capture costs the traffic it watches, next to tcpdump, in one run.

Usage: sudo benches/live_vs_tcpdump.py [--runs 5] [--seconds 10]

Starts two nginx servers on 127.0.0.1 (`apt-get install nginx-light wrk tcpdump`): production
serves nginx's default 615-byte page and logs every request, as a real service does, and the
shadow answers 204. Then it drives production with wrk at
64 keep-alive connections asking for 1000 different paths in turn, in rounds, under each of:

- nothing capturing: the load's own rate, which the others are compared with;
- `tcpdump -i lo -B 16384 -w FILE tcp port P` (requests and responses, 16 MiB buffer);
- `shadowtap capture -i lo --port P -w FILE` (the same, same buffer by default);
- `shadowtap mirror -i lo --port P --shadow SHADOW --sample 10`: production latency of every
  exchange tracked off the wire, one request in ten replayed to the shadow.

The scenarios take turns within each round, so a busy moment of the machine hits them alike;
the table gives each one's median rate, its ratio to the load alone, packets dropped by the
kernel (summed over the runs), and for mirror whether every request seen was accounted for.
"""
import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

from loopback import CONNECTIONS, free_port, nginx, wrk

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Production serves a page and logs every request; the shadow answers 204.
SERVERS = """    server {{
        listen 127.0.0.1:{prod};
        access_log /dev/null;
        root {dir}/html;
        location / {{ try_files $uri /index.html; }}
    }}
    server {{ listen 127.0.0.1:{shadow}; location / {{ return 204; }} }}"""


# The size of nginx's default welcome page.
PAGE = "<!DOCTYPE html>\n<html><head><title>production</title></head><body>" + "x" * 534 + "</body></html>\n"


# wrk asks for 1000 different paths in turn: `--sample` keeps a request in or out by a stable
# hash of its method and target, so one repeated URL would be all in or all out.
PATHS_LUA = """
local paths = {}
for i = 1, 1000 do paths[i] = wrk.format(nil, "/item/" .. i, {["Host"] = "production"}) end
local n = 0
request = function()
  n = n % 1000 + 1
  return paths[n]
end
"""


def start(cmd, ready):
    """Starts a capturer and waits until its stderr says it is capturing."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stderr.readline()
    if ready not in line:
        proc.kill()
        sys.exit(f"bench: {cmd[0]} did not start: {line.strip()}")
    time.sleep(0.3)
    return proc


def stop(proc):
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    if proc.returncode != 0:
        sys.exit(f"bench: {proc.args[0]} failed ({proc.returncode}): {err.strip()}")
    return out, err


def run(scenario, shadowtap, port, shadow_port, tmp, seconds):
    """One run: (requests/s, kernel drops, note)."""
    url = f"http://127.0.0.1:{port}/"
    # Capture files go to memory when /dev/shm is there: the disk's write-back of one run's
    # file would otherwise take CPU from the next run.
    path = os.path.join("/dev/shm" if os.path.isdir("/dev/shm") else tmp, f"shadowtap-bench-{os.getpid()}.pcap")
    script = os.path.join(tmp, "paths.lua")
    try:
        if scenario == "load alone":
            return wrk(url, seconds, script), 0, ""
        if scenario == "tcpdump":
            proc = start(["tcpdump", "-i", "lo", "-B", "16384", "-s", "262144", "-w", path,
                          f"tcp port {port}"], "listening on")
            rate = wrk(url, seconds, script)
            _, err = stop(proc)
            drops = int(re.search(r"(\d+) packets? dropped by kernel", err).group(1))
            return rate, drops, ""
        if scenario == "shadowtap capture":
            proc = start([shadowtap, "capture", "-i", "lo", "--port", str(port), "-w", path],
                         "capturing on")
            rate = wrk(url, seconds, script)
            out, _ = stop(proc)
            drops = int(re.search(r"(\d+) dropped by the kernel", out).group(1))
            exchanges = int(re.search(r"(\d+) HTTP exchanges", out).group(1))
            return rate, drops, f"{exchanges} exchanges"
        proc = start([shadowtap, "mirror", "-i", "lo", "--port", str(port), "--shadow",
                      f"http://127.0.0.1:{shadow_port}", "--sample", "10", "--format", "json",
                      "--interval", "1h"], "mirroring")
        rate = wrk(url, seconds, script)
        out, _ = stop(proc)
        report = json.loads(out)
        c = report["counts"]
        other = sum(sum(c[k].values()) for k in ("filtered", "dropped", "incomplete"))
        accounted = "all accounted" if c["seen"] == c["replayed"] + other else "NOT ACCOUNTED"
        note = (f"{c['seen']} seen, {c['replayed']} replayed, {sum(c['dropped'].values())} dropped, "
                f"production p99 {report['production']['total_us']['p99']} us, {accounted}")
        return rate, report["capture"]["kernel_drops"], note
    finally:
        if os.path.exists(path):
            os.remove(path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--seconds", type=int, default=10)
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench: live capture needs root (or CAP_NET_RAW)")
    for tool in ("nginx", "wrk", "tcpdump"):
        if not shutil.which(tool):
            sys.exit(f"bench: {tool} is missing (apt-get install nginx-light wrk tcpdump)")
    subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "shadowtap"], cwd=ROOT, check=True)
    shadowtap = os.path.join(ROOT, "target", "release", "shadowtap")
    scenarios = ["load alone", "tcpdump", "shadowtap capture", "shadowtap mirror --sample 10"]
    results = {s: [] for s in scenarios}
    with tempfile.TemporaryDirectory() as tmp:
        os.chmod(tmp, 0o755)
        port, shadow_port = free_port(), free_port()
        with open(os.path.join(tmp, "paths.lua"), "w") as f:
            f.write(PATHS_LUA)
        os.mkdir(os.path.join(tmp, "html"))
        with open(os.path.join(tmp, "html", "index.html"), "w") as f:
            f.write(PAGE)
        with nginx(tmp, SERVERS.format(dir=tmp, prod=port, shadow=shadow_port)):
            for _ in range(args.runs):
                for s in scenarios:
                    results[s].append(run(s, shadowtap, port, shadow_port, tmp, args.seconds))
                    time.sleep(1)
    base = statistics.median(r[0] for r in results["load alone"])
    print(f"wrk -> nginx on loopback, {CONNECTIONS} connections, 1000 paths, {args.seconds} s runs, median of {args.runs}")
    print(f"  {'capturing':<30} {'req/s':>9} {'x alone':>8} {'range':>12} {'kernel drops':>13}")
    for s in scenarios:
        rates = [r[0] for r in results[s]]
        rate = statistics.median(rates)
        spread = f"{min(rates) / base:.2f}-{max(rates) / base:.2f}"
        drops = sum(r[1] for r in results[s])
        print(f"  {s:<30} {rate:9.0f} {rate / base:8.2f} {spread:>12} {drops:13}  {results[s][-1][2]}")


if __name__ == "__main__":
    main()
