# Quick start: `make demo` replays a bundled capture against an embedded shadow and prints the
# comparison report; `make test` runs every test.
# Both first make sure the system's libpcap is there (the `pcap` crate links against it);
# `make test` also Chromium, in which a test renders the HTML report.

CARGO ?= cargo

.PHONY: deps browser demo test check corpus

deps:
	@if [ ! -e /usr/include/pcap.h ] && [ ! -e /usr/include/pcap/pcap.h ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing libpcap-dev (needed to build shadowtap)"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libpcap-dev >/dev/null) \
	      || { echo "could not install libpcap-dev"; exit 1; }; \
	  else \
	    echo "libpcap is missing: run  sudo apt-get install -y libpcap-dev  then try again"; exit 1; \
	  fi; \
	fi

# The HTML report is tested in a real browser (headless Chromium).
browser:
	@if ! command -v chromium >/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing chromium (the HTML report's test renders it)"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	      || { echo "could not install chromium"; exit 1; }; \
	  else \
	    echo "chromium is missing (the tests render the HTML report): run  sudo apt-get install -y chromium"; \
	  fi; \
	fi

demo: deps
	$(CARGO) run --release --quiet -- demo

test: deps browser
	$(CARGO) test

# What CI checks besides the tests.
check: deps
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings

corpus: deps
	$(CARGO) build --release --quiet
	SHADOWTAP=target/release/shadowtap ../shared/tools/corpus-check --min-recall 0.995 --min-status 0.995
