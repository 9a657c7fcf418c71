//! Writes a large synthetic capture of keep-alive HTTP/1.1 traffic for benchmarks.
//!
//! `cargo run --release --example gencap -- OUT.pcap SIZE_MB [MSS] [CONNECTIONS] [BODY]`:
//! MSS 0 (default) puts every message in one packet, as loopback's 64 KiB MTU does; MSS 1448
//! cuts them as a real Ethernet network does. CONNECTIONS (default 16) are open at a time.
//! BODY is the response body length: `page` (default) for a 2.8 KB HTML page, 0 for
//! `204 No Content`, or any byte count. See `benches/support/synth.rs` for the traffic.

use std::fs::File;
use std::io::{BufWriter, Write};

#[path = "../benches/support/synth.rs"]
mod synth;

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: gencap OUT.pcap SIZE_MB [MSS] [CONNECTIONS] [BODY]");
        std::process::exit(2);
    }
    let size: u64 = args[2].parse().unwrap_or(1024) * 1024 * 1024;
    let mss: usize = args.get(3).and_then(|m| m.parse().ok()).unwrap_or(0);
    let mut w = BufWriter::with_capacity(1 << 20, File::create(&args[1])?);
    let concurrent: usize = args
        .get(4)
        .and_then(|c| c.parse().ok())
        .unwrap_or(synth::CONCURRENT);
    let body = match args.get(5).map(String::as_str) {
        None | Some("page") => synth::PAGE,
        Some(n) => Some(n.parse().unwrap_or(0)),
    };
    let (written, requests) = synth::write_capture(&mut w, size, mss, concurrent, body)?;
    w.flush()?;
    eprintln!("{}: {} bytes, {} requests", args[1], written, requests);
    Ok(())
}
