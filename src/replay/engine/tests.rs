//! Pacing under a paused clock: tokio's time only moves when every task waits, so send
//! times and lateness come out exact and the tests take no real time.

use super::collector::Collector;
use super::pacing::{spin_before, SPIN};
use super::shard::run_shard;
use super::*;
use crate::reassembly::FlowId;
use crate::replay::request::HostHeader;
use std::sync::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::LocalSet;

/// A shadow that answers every request after `delay` and records, per request, the
/// paused clock's time (since `t0`) at which its head arrived and its target.
async fn shadow(delay: Duration, t0: Instant) -> (SocketAddr, Arc<Mutex<Vec<(u64, String)>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    tokio::spawn(async move {
        loop {
            let (mut conn, _) = listener.accept().await.unwrap();
            let record = record.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    let mut chunk = [0u8; 4096];
                    let n = conn.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..end]).to_string();
                        buf.drain(..end + 4);
                        let target = head.split(' ').nth(1).unwrap_or("").to_string();
                        let ms = (Instant::now() - t0).as_millis() as u64;
                        record.lock().unwrap().push((ms, target));
                        tokio::time::sleep(delay).await;
                        conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                            .await
                            .unwrap();
                    }
                }
            });
        }
    });
    (addr, seen)
}

fn job(flow: u64, target: &str, at: Option<Instant>) -> Timed {
    let mut ex = crate::replay::test_exchange("GET", target, &[], b"");
    ex.flow = FlowId(flow);
    Timed {
        ex: Box::new(ex),
        intended: at,
        bytes: 0,
    }
}

/// A shard of `slots` workers to `addr`, requests sent as captured (Host kept), no log.
fn test_shard(
    addr: std::net::SocketAddr,
    slots: usize,
    timeout: Duration,
    shutdown: Arc<Shutdown>,
) -> Shard {
    Shard {
        client: Client::new(addr, None),
        slots,
        timeout,
        rewrites: Arc::new(Rewrites {
            host: HostHeader::Keep,
            set: Vec::new(),
            strip: Vec::new(),
        }),
        log: None,
        progress: Arc::default(),
        precise: false,
        pending: Arc::default(),
        shutdown,
        index: 0,
        keep_order: true,
    }
}

/// Runs one shard over `jobs` (intended times in ms from now) against a shadow answering
/// in `delay_ms`; returns when each target arrived (ms) and the shard's statistics.
async fn run(
    slots: usize,
    delay_ms: u64,
    jobs: &[(u64, &str, u64)],
) -> (Vec<(u64, String)>, Stats) {
    run_ordered(true, slots, delay_ms, jobs).await
}

/// [`run`], the requests of one captured connection in order or not (`keep_order`).
async fn run_ordered(
    keep_order: bool,
    slots: usize,
    delay_ms: u64,
    jobs: &[(u64, &str, u64)],
) -> (Vec<(u64, String)>, Stats) {
    let t0 = Instant::now();
    let (addr, seen) = shadow(Duration::from_millis(delay_ms), t0).await;
    let shard = Shard {
        keep_order,
        ..test_shard(
            addr,
            slots,
            Duration::from_secs(5),
            Arc::new(Shutdown::new(1)),
        )
    };
    let (tx, rx) = mpsc::channel(4);
    let batch = jobs
        .iter()
        .map(|&(flow, target, ms)| job(flow, target, Some(t0 + Duration::from_millis(ms))))
        .collect();
    tx.send(batch).await.unwrap();
    drop(tx);
    let stats = Collector::default();
    LocalSet::new()
        .run_until(run_shard(rx, shard, stats.clone()))
        .await;
    let stats = stats.borrow().clone();
    let mut seen = seen.lock().unwrap().clone();
    seen.sort();
    (seen, stats)
}

/// The scheduling policy of a thread.
fn policy(thread: &JoinHandle<()>) -> libc::c_int {
    use std::os::unix::thread::JoinHandleExt;
    let mut policy = -1;
    let mut param = libc::sched_param { sched_priority: 0 };
    // SAFETY: the thread is alive (not joined) and both pointers are valid.
    let rc = unsafe { libc::pthread_getschedparam(thread.as_pthread_t(), &mut policy, &mut param) };
    assert_eq!(rc, 0);
    policy
}

#[test]
fn unpaced_replay_threads_run_as_batch_work_and_paced_ones_do_not() {
    for unpaced in [true, false] {
        let engine = Engine::start(Config {
            unpaced,
            ..config(2)
        })
        .unwrap();
        let want = if unpaced {
            libc::SCHED_BATCH
        } else {
            libc::SCHED_OTHER
        };
        // Each thread sets its policy as it starts: wait for that, a bounded while.
        let started = std::time::Instant::now();
        while engine.threads.iter().any(|t| policy(t) != want)
            && started.elapsed() < Duration::from_secs(5)
        {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(engine.threads.len(), 2);
        for thread in &engine.threads {
            assert_eq!(policy(thread), want, "unpaced: {unpaced}");
        }
        engine.finish().unwrap();
    }
}

fn config(shards: usize) -> Config {
    Config {
        shadow: "127.0.0.1:9".parse().unwrap(),
        tls: None,
        concurrency: 4,
        timeout: Duration::from_secs(1),
        rewrites: Rewrites {
            host: HostHeader::Keep,
            set: Vec::new(),
            strip: Vec::new(),
        },
        log: None,
        queue: 1,
        waiting: 1_000,
        shards: Some(shards),
        unpaced: false,
        order: Order::Connection,
    }
}

#[test]
fn batches_are_handed_over_by_bytes_as_well_as_by_count() {
    let mut engine = Engine::start(config(1)).unwrap();
    let big = |flow| {
        let mut ex = crate::replay::test_exchange("POST", "/u", &[], &vec![b'x'; 600 << 10]);
        ex.flow = FlowId(flow);
        Job {
            ex: Box::new(ex),
            at: None,
        }
    };
    // Two 600 KiB requests pass 1 MiB: the batch goes with two jobs, not 64.
    engine.push(big(1));
    assert_eq!(engine.batches[0].len(), 1);
    engine.push(big(2));
    assert!(engine.batches[0].is_empty());
    assert_eq!(engine.batch_bytes[0], 0);
    engine.push(big(3));
    assert_eq!(engine.batches[0].len(), 1);
    let (stats, _) = engine.finish().unwrap();
    assert_eq!(stats.replayed, 3, "all three were sent (to a closed port)");
}

#[test]
fn a_paced_job_goes_at_once_to_an_idle_shard() {
    let job = |flow, at| {
        let mut ex = crate::replay::test_exchange("GET", "/", &[], b"");
        ex.flow = FlowId(flow);
        Job {
            ex: Box::new(ex),
            at,
        }
    };
    let hour = Some(Duration::from_secs(3600));
    let mut engine = Engine::start(config(1)).unwrap();
    // Nothing waiting: the job is handed over alone, not held for 63 more.
    engine.push(job(1, hour));
    assert!(engine.batches[0].is_empty());
    assert_eq!(engine.pending[0].jobs.load(Ordering::Relaxed), 1);
    // The shard now waits (an hour) to send it: the next one joins a batch.
    engine.push(job(2, hour));
    assert_eq!(engine.batches[0].len(), 1);
    drop(engine);
    // Unpaced jobs always go in batches.
    let mut engine = Engine::start(config(1)).unwrap();
    engine.push(job(1, None));
    assert_eq!(engine.batches[0].len(), 1);
    assert_eq!(engine.pending[0].jobs.load(Ordering::Relaxed), 0);
    engine.finish().unwrap();
}

#[test]
fn independent_jobs_of_one_connection_are_spread_over_the_shards() {
    let job = || {
        let mut ex = crate::replay::test_exchange("GET", "/", &[], b"");
        ex.flow = FlowId(7);
        Job {
            ex: Box::new(ex),
            at: None,
        }
    };
    for (order, spread) in [(Order::Independent, true), (Order::Connection, false)] {
        let mut engine = Engine::start(Config { order, ..config(2) }).unwrap();
        for _ in 0..BATCH + 1 {
            engine.push(job());
        }
        // A full batch went to one shard; the next job waits in the next shard's batch when
        // connections do not keep their order, in the connection's shard when they do.
        let filling: Vec<usize> = engine.batches.iter().map(Vec::len).collect();
        let home = (FlowId(7).0.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as usize % 2;
        let expected = if spread {
            [0, 1]
        } else if home == 0 {
            [1, 0]
        } else {
            [0, 1]
        };
        assert_eq!(filling, expected, "{order:?}");
        if spread {
            assert_eq!(
                engine.turn, 1,
                "the first shard's batch went: the second's turn"
            );
        }
        drop(engine);
    }
}

#[test]
fn a_live_source_is_refused_past_the_bytes_waiting() {
    let mut engine = Engine::start(Config {
        queue: 1_000,
        ..config(1)
    })
    .unwrap();
    // A shard whose queue only fills: nothing is taken from it while the test pushes.
    // (Its workers can take at most 4 x 5 jobs; the rest wait.)
    let mut refused = 0;
    let mut accepted = 0;
    for flow in 0..400 {
        let mut ex = crate::replay::test_exchange("POST", "/u", &[], &vec![b'x'; 1 << 20]);
        ex.flow = FlowId(flow);
        let job = Job {
            ex: Box::new(ex),
            at: Some(Duration::from_secs(3600)),
        };
        match engine.try_push(job) {
            Ok(()) => accepted += 1,
            Err(n) => refused += n,
        }
    }
    assert!(refused > 0, "400 MiB cannot all wait");
    let waiting = engine.pending[0].bytes.load(Ordering::Relaxed);
    assert!(waiting <= WAITING_BYTES, "{waiting}");
    assert!(accepted >= WAITING_BYTES / (2 << 20), "{accepted}");
    drop(engine);
}

#[test]
fn the_spin_before_a_send_shrinks_with_the_gap_between_sends() {
    let t0 = Instant::now();
    let us = Duration::from_micros;
    assert_eq!(spin_before(t0 + us(10), None), SPIN);
    assert_eq!(spin_before(t0 + us(20_000), Some(t0)), SPIN);
    assert_eq!(spin_before(t0 + us(1_200), Some(t0)), SPIN);
    assert_eq!(spin_before(t0 + us(100), Some(t0)), us(25));
    assert_eq!(spin_before(t0, Some(t0 + us(5))), Duration::ZERO);
}

fn lateness_ms(stats: &Stats, percentile: f64) -> u64 {
    stats
        .lateness
        .as_ref()
        .map_or(0, |h| h.value_at_percentile(percentile) / 1000)
}

#[tokio::test(start_paused = true)]
async fn a_stop_drops_what_is_queued_and_a_cut_gives_up_what_is_in_flight() {
    let t0 = Instant::now();
    // A shadow that takes 10 s: nothing is answered before the cut.
    let (addr, seen) = shadow(Duration::from_secs(10), t0).await;
    let shutdown = Arc::new(Shutdown::new(1));
    let shard = test_shard(addr, 2, Duration::from_secs(30), shutdown.clone());
    let (tx, rx) = mpsc::channel(4);
    // Ten connections' requests due now: two in flight, eight in the workers' queues;
    // two more due in an hour, waited for by the dispatcher.
    let mut batch: Vec<Timed> = (0..10).map(|i| job(i, "/now", Some(t0))).collect();
    batch.extend((10..12).map(|i| job(i, "/later", Some(t0 + Duration::from_secs(3600)))));
    tx.send(batch).await.unwrap();
    let stats = Collector::default();
    LocalSet::new()
        .run_until(async {
            let run = tokio::task::spawn_local(run_shard(rx, shard, stats.clone()));
            tokio::time::sleep(Duration::from_millis(5)).await;
            assert_eq!(seen.lock().unwrap().len(), 2, "two requests in flight");
            // Stop: nothing more is sent, what is in flight may still finish.
            shutdown.stop(Duration::from_secs(60));
            tokio::time::sleep(Duration::from_millis(5)).await;
            assert_eq!(stats.borrow().replayed, 0, "still in flight");
            // Cut: what is in flight is given up.
            shutdown.cut();
            drop(tx);
            run.await.unwrap();
        })
        .await;
    let s = stats.borrow();
    assert_eq!(s.replayed, 2);
    assert_eq!(
        s.shadow
            .errors
            .get(crate::replay::client::Failure::Shutdown),
        2
    );
    let dropped = s.skipped.get(crate::replay::stats::Reason::Dropped(
        crate::replay::stats::Dropped::Shutdown,
    ));
    assert_eq!(
        dropped, 10,
        "eight queued at the workers, two waiting for their time"
    );
    assert_eq!(s.seen, 12);
    assert_eq!(seen.lock().unwrap().len(), 2, "nothing else was sent");
}

#[tokio::test(start_paused = true)]
async fn requests_leave_at_their_intended_times_when_the_shadow_keeps_up() {
    let (seen, stats) = run(
        4,
        5,
        &[(1, "/a", 0), (2, "/b", 10), (1, "/c", 40), (3, "/d", 1000)],
    )
    .await;
    let at: Vec<(u64, &str)> = seen.iter().map(|(ms, t)| (*ms, t.as_str())).collect();
    assert_eq!(at, [(0, "/a"), (10, "/b"), (40, "/c"), (1000, "/d")]);
    assert_eq!(stats.replayed, 4);
    assert_eq!(lateness_ms(&stats, 100.0), 0, "nothing was late");
}

#[tokio::test(start_paused = true)]
async fn a_connection_waits_for_its_previous_answer_and_the_wait_is_lateness() {
    // /c belongs to the same captured connection as /a, whose answer takes 50 ms: it
    // leaves at 50 ms, 30 ms late. /b, on another connection, is not held up.
    let (seen, stats) = run(4, 50, &[(1, "/a", 0), (2, "/b", 10), (1, "/c", 20)]).await;
    let at: Vec<(u64, &str)> = seen.iter().map(|(ms, t)| (*ms, t.as_str())).collect();
    assert_eq!(at, [(0, "/a"), (10, "/b"), (50, "/c")]);
    assert_eq!(lateness_ms(&stats, 100.0), 30);
}

#[tokio::test(start_paused = true)]
async fn independent_requests_of_one_connection_do_not_wait_for_each_other() {
    // As above, without --keep-order connection: /c leaves at its time on a free
    // connection, though /a is still unanswered.
    let (seen, stats) =
        run_ordered(false, 4, 50, &[(1, "/a", 0), (2, "/b", 10), (1, "/c", 20)]).await;
    let at: Vec<(u64, &str)> = seen.iter().map(|(ms, t)| (*ms, t.as_str())).collect();
    assert_eq!(at, [(0, "/a"), (10, "/b"), (20, "/c")]);
    assert_eq!(lateness_ms(&stats, 100.0), 0, "nothing was late");
}

#[tokio::test(start_paused = true)]
async fn the_concurrency_cap_delays_requests_and_says_by_how_much() {
    // One connection: each request waits for the one before, whatever its connection.
    let (seen, stats) = run(1, 50, &[(1, "/a", 0), (2, "/b", 10), (3, "/c", 20)]).await;
    let at: Vec<(u64, &str)> = seen.iter().map(|(ms, t)| (*ms, t.as_str())).collect();
    assert_eq!(at, [(0, "/a"), (50, "/b"), (100, "/c")]);
    assert_eq!(lateness_ms(&stats, 100.0), 80, "/c left 80 ms late");
    assert_eq!(stats.shadow.requests, 3);
}

#[test]
fn snapshots_are_answered_by_the_shards_while_they_run_and_after_they_end() {
    let mut engine = Engine::start(config(2)).unwrap();
    let snapshots = engine.stats_handle();
    for flow in 0..20 {
        let ex = crate::replay::test_exchange("GET", "/", &[], b"");
        let mut ex = ex;
        ex.flow = FlowId(flow);
        engine.push(Job {
            ex: Box::new(ex),
            at: None,
        });
    }
    engine.flush();
    // Sent to a closed port: each fails at once; asked while the shards run.
    let started = std::time::Instant::now();
    let mut replayed = 0;
    while replayed < 20 && started.elapsed() < Duration::from_secs(10) {
        replayed = snapshots.take().replayed;
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(
        replayed, 20,
        "both shards answered with every request counted"
    );
    let (stats, _) = engine.finish().unwrap();
    assert_eq!(stats.replayed, 20);
    // Ended: the shards' last figures.
    let after = snapshots.take();
    assert_eq!(after.replayed, 20);
    assert_eq!(after.seen, stats.seen);
}
