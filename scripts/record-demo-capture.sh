#!/usr/bin/env bash
# Records assets/demo.pcap, the capture `shadowtap demo` replays: a real HTTP service
# (scripts/demo_service.py) on loopback driven by keep-alive clients, captured with tcpdump.
# Needs root (or CAP_NET_RAW), tcpdump and python3.
set -euo pipefail
cd "$(dirname "$0")/.."
PORT=${PORT:-18000}
REQUESTS=${REQUESTS:-800}
OUT=assets/demo.pcap

python3 scripts/demo_service.py serve "$PORT" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
sleep 0.5
tcpdump -i lo -s 0 -U -w "$OUT" "tcp port $PORT" 2>/dev/null &
DUMP=$!
sleep 1
python3 scripts/demo_service.py drive "$PORT" "$REQUESTS"
# Let tcpdump see the last segments before it stops.
sleep 2
kill -INT $DUMP
wait $DUMP 2>/dev/null || true
ls -l "$OUT"
