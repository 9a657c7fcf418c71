# Quick start: `make demo` replays a bundled capture against an embedded shadow and prints the
# comparison report; `make test` runs every test.
# Both first make sure the system's libpcap is there (the `pcap` crate links against it).

CARGO ?= cargo

.PHONY: deps demo test check corpus

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

demo: deps
	$(CARGO) run --release --quiet -- demo

test: deps
	$(CARGO) test

# What CI checks besides the tests.
check: deps
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings

corpus: deps
	$(CARGO) build --release --quiet
	SHADOWTAP=target/release/shadowtap ../shared/tools/corpus-check --min-recall 0.995 --min-status 0.995
