//! `wgbert serve` under faults and at its bounds: a device destroyed under the server with
//! requests queued behind it, a panic in one batch, a client that hangs up before its job
//! runs, a hung GPU; bodies over the payload limit and unauthenticated requests answered
//! before their bodies are read (and their bodies drained), shed requests answered only
//! once their bodies are whole, and a full queue. Faults come from the test-only hook (`WGBERT_TEST_FAULTS`, read
//! by debug builds only).

mod common;
mod serve_util;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::model_dir::model_dir;
use serde_json::json;
use serve_util::Server;

/// A request whose GPU batch keeps a tiny model busy for a while on a software adapter:
/// 32 texts of about 450 tokens.
fn heavy_body() -> serde_json::Value {
    let long = vec!["w9 w10 w11"; 150].join(" ");
    json!({ "inputs": vec![long; 32] })
}

/// Sends a request's head declaring `len` body bytes, and `sent` of them; returns the
/// connection, the status line and head of the answer (read while the rest of the body is
/// still unsent), and how long the answer took.
fn answer_before_body(
    s: &Server,
    path: &str,
    extra: &str,
    len: usize,
    sent: usize,
) -> (TcpStream, String, Duration) {
    let addr = s.base.trim_start_matches("http://").to_string();
    let mut c = TcpStream::connect(&addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n{extra}\
         Content-Length: {len}\r\n\r\n"
    );
    c.write_all(head.as_bytes()).unwrap();
    c.write_all(&vec![b' '; sent]).unwrap();
    let start = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        match c.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => panic!("{path}: no answer before the body was sent: {e}"),
        }
    }
    (
        c,
        String::from_utf8_lossy(&got).into_owned(),
        start.elapsed(),
    )
}

/// A metric's value from `/metrics` (0 when absent).
fn metric(s: &Server, name: &str) -> f64 {
    let (_, text) = s.get("/metrics");
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

/// The device is destroyed while requests wait in the engine's queue: the request that
/// destroyed it and every request queued behind it fail (503, none hangs), the one that ran
/// before it succeeds, and `/health` turns 503 within a second and stays so. The `sleep`
/// hook keeps the engine busy with A long enough for D and then R1..R3 to queue behind it.
#[test]
fn a_destroyed_device_turns_health_to_503_and_in_flight_requests_fail() {
    let dir = model_dir("encoder_noprefix");
    let s = Server::start_with_env(
        dir.path(),
        &[],
        &[],
        &[("WGBERT_TEST_FAULTS", "sleep:81,destroy:79")],
    );
    assert_eq!(s.get("/health").0, 200);
    let started = Instant::now();
    let (a, a_done, d, queued) = std::thread::scope(|scope| {
        let a = scope.spawn(|| {
            let r = s.post("/embed_all", &json!({ "inputs": "w5 w81" })).0;
            (r, started.elapsed())
        });
        std::thread::sleep(Duration::from_millis(400));
        let d = scope.spawn(|| s.post("/embed", &json!({ "inputs": "w5 w79" })).0);
        std::thread::sleep(Duration::from_millis(200));
        let queued: Vec<_> = (0..3)
            .map(|i| {
                let sent = started.elapsed();
                let s = &s;
                let h = scope.spawn(move || {
                    let body = json!({ "inputs": format!("w6 w{}", 7 + i) });
                    s.post("/embed_all", &body)
                });
                (sent, h)
            })
            .collect();
        let queued: Vec<_> = queued
            .into_iter()
            .map(|(sent, h)| (sent, h.join().unwrap()))
            .collect();
        let (a, a_done) = a.join().unwrap();
        (a, a_done, d.join().unwrap(), queued)
    });
    assert_eq!(a, 200, "the batch before the loss is answered");
    assert_eq!(d, 503, "the request that destroyed the device");
    for (sent, (status, v)) in &queued {
        // Sent while A still held the engine (it sleeps 2 s), so queued behind D.
        assert!(
            *sent + Duration::from_millis(800) < a_done,
            "R was sent at {sent:?}, A answered at {a_done:?}: not queued in time"
        );
        assert_eq!(*status, 503, "a queued request fails with the device: {v}");
        assert!(v["error"].as_str().unwrap_or("").contains("lost"), "{v}");
    }
    // /health says so within a second, and stays so.
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        let (status, body) = s.get("/health");
        if status == 503 {
            assert!(body.contains("lost"), "{body}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "/health still {status} after the loss"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let (status, body) = s.post("/embed", &json!({ "inputs": "w5 w6" }));
    assert_eq!(status, 503, "{body}");
    assert_eq!(s.get("/").0, 503, "GET / is the same probe");
    // The server still exits cleanly when told to.
    assert!(s.terminate().success());
}

#[test]
fn a_panic_fails_only_its_own_batch_and_the_server_stays_healthy() {
    let dir = model_dir("mlm_v4");
    let s = Server::start_with_env(dir.path(), &[], &[], &[("WGBERT_TEST_FAULTS", "panic:78")]);
    let (status, v) = s.post("/embed", &json!({ "inputs": ["w5 w78", "w6"] }));
    assert_eq!(status, 500, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("injected panic"),
        "{v}"
    );
    assert_eq!(s.get("/health").0, 200);
    assert_eq!(metric(&s, "wgbert_engine_panics_total"), 1.0);
    // Every task goes on working, also the one that panicked.
    s.ok("/embed", &json!({ "inputs": ["w5 w77", "w6"] }));
    s.ok("/fill-mask", &json!({ "inputs": "w5 [MASK]" }));
    // Concurrent requests: only those that shared the bad batch can fail.
    let results: Vec<u16> = std::thread::scope(|scope| {
        let hs: Vec<_> = (0..8)
            .map(|i| {
                let s = &s;
                scope.spawn(move || {
                    s.post("/embed", &json!({ "inputs": format!("w{} w7", 10 + i) }))
                        .0
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(results.iter().all(|&c| c == 200), "{results:?}");
    assert!(s.terminate().success());
}

#[test]
fn a_client_that_hangs_up_has_its_job_dropped() {
    let dir = model_dir("encoder_noprefix");
    let s = Server::start(dir.path(), &[], &[]);
    let heavy = heavy_body();
    let before = metric(&s, "wgbert_batch_tokens_sum");
    let addr = s.base.trim_start_matches("http://").to_string();
    let a_tokens = std::thread::scope(|scope| {
        let a = scope.spawn(|| s.post("/embed_all", &heavy));
        std::thread::sleep(Duration::from_millis(150));
        // B: a request queued behind A, from a client that leaves at once.
        let body = json!({ "inputs": "w5 w6 w7 w8 w9 w10 w11" }).to_string();
        let mut c = TcpStream::connect(&addr).unwrap();
        let req = format!(
            "POST /embed HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        c.write_all(req.as_bytes()).unwrap();
        std::thread::sleep(Duration::from_millis(30));
        drop(c);
        let (status, v) = a.join().unwrap();
        assert_eq!(status, 200);
        v.as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_array().unwrap().len())
            .sum::<usize>()
    });
    std::thread::sleep(Duration::from_millis(300));
    let after = metric(&s, "wgbert_batch_tokens_sum");
    assert_eq!(
        after - before,
        a_tokens as f64,
        "only A's tokens ran; B's client hung up before its turn"
    );
    assert_eq!(s.get("/health").0, 200);
    assert!(s.terminate().success());
}

/// A wait that outlives `--gpu-timeout` (settled as `Gpu::wait` settles it: the `hang`
/// hook, since a software adapter may finish any batch before its wait starts) marks the
/// device hung: that request and every later one get 503, and so does `/health`.
#[test]
fn a_gpu_wait_past_the_timeout_marks_the_device_hung() {
    let dir = model_dir("encoder_noprefix");
    let s = Server::start_with_env(
        dir.path(),
        &[],
        &["--gpu-timeout", "2.5"],
        &[("WGBERT_TEST_FAULTS", "hang:80")],
    );
    let (_, info) = s.get("/info");
    assert!(info.contains("\"gpu_timeout_seconds\":2.5"), "{info}");
    s.ok("/embed", &json!({ "inputs": "w5 w6" }));
    let (status, v) = s.post("/embed", &json!({ "inputs": "w5 w80" }));
    assert_eq!(status, 503, "{v}");
    let (status, body) = s.get("/health");
    assert_eq!(status, 503);
    assert!(body.contains("did not finish within 2.5 s"), "{body}");
    assert_eq!(s.post("/embed", &json!({ "inputs": "w5 w6" })).0, 503);
    assert!(s.terminate().success());
}

/// A missing key (401) and a declared size over the limit (413) are answered before the
/// body is sent, within a second or two; the client may then send the whole body, which is
/// read and dropped (no reset), and the connection closes. A request over
/// `--max-concurrent-requests` is answered 429 only once its whole body is in: until then
/// it holds no slot and gets no answer.
#[test]
fn keys_and_sizes_are_refused_before_the_body_and_load_after_it() {
    let dir = model_dir("encoder_noprefix");
    let s = Server::start_with_env(
        dir.path(),
        &[],
        &["--api-key", "secret", "--max-concurrent-requests", "1"],
        &[("WGBERT_TEST_FAULTS", "sleep:81")],
    );
    let auth = "Authorization: Bearer secret\r\n";
    for (extra, len, want) in [
        (auth, 3_000_000, "HTTP/1.1 413"),
        ("", 1_000_000, "HTTP/1.1 401"),
        ("Authorization: Bearer secreT\r\n", 100_000, "HTTP/1.1 401"),
    ] {
        let (mut c, head, took) = answer_before_body(&s, "/embed", extra, len, 1000);
        assert!(head.starts_with(want), "{head}");
        assert!(took < Duration::from_secs(2), "{want} took {took:?}");
        // The rest of the body still goes through: read and dropped, then the close.
        c.write_all(&vec![b' '; len - 1000])
            .expect("the body is read, not reset");
        let mut rest = Vec::new();
        c.read_to_end(&mut rest).expect("a clean close");
    }
    let mut keyed = s;
    keyed.key = Some("secret".into());
    let s = keyed;
    std::thread::scope(|scope| {
        // The one slot is busy for 2 s (the `sleep` hook).
        let busy = scope.spawn(|| s.post("/embed", &json!({ "inputs": "w5 w81" })).0);
        std::thread::sleep(Duration::from_millis(300));
        let addr = s.base.trim_start_matches("http://").to_string();
        let body = json!({ "inputs": "w5 w6" }).to_string();
        let mut c = TcpStream::connect(&addr).unwrap();
        let head = format!(
            "POST /embed HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
             {auth}Content-Length: {}\r\n\r\n",
            body.len()
        );
        c.write_all(head.as_bytes()).unwrap();
        c.write_all(&body.as_bytes()[..4]).unwrap();
        // No slot is taken and no answer comes while the body is incomplete.
        c.set_read_timeout(Some(Duration::from_millis(700)))
            .unwrap();
        let mut buf = [0u8; 64];
        let early = c.read(&mut buf);
        assert!(
            early.is_err(),
            "answered before the body was whole: {early:?}"
        );
        c.write_all(&body.as_bytes()[4..]).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut head = [0u8; 12];
        c.read_exact(&mut head).unwrap();
        let head = String::from_utf8_lossy(&head);
        assert_eq!(head, "HTTP/1.1 429", "{head}");
        assert_eq!(busy.join().unwrap(), 200);
    });
    assert!(s.terminate().success());
}

#[test]
fn a_full_queue_is_429() {
    let dir = model_dir("encoder_noprefix");
    let s = Server::start(dir.path(), &[], &["--max-queued-requests", "1"]);
    let heavy = heavy_body();
    let answers: Vec<(u16, String)> = std::thread::scope(|scope| {
        let hs: Vec<_> = (0..8)
            .map(|_| scope.spawn(|| s.post("/embed_all", &heavy)))
            .collect();
        hs.into_iter()
            .map(|h| {
                let (status, v) = h.join().unwrap();
                (status, v["error"].as_str().unwrap_or("").to_string())
            })
            .collect()
    });
    assert!(
        answers.iter().all(|(c, _)| *c == 200 || *c == 429),
        "{answers:?}"
    );
    let full: Vec<_> = answers.iter().filter(|(c, _)| *c == 429).collect();
    assert!(!full.is_empty(), "{answers:?}");
    assert!(
        full.iter().all(|(_, m)| m.contains("queue is full")),
        "{full:?}"
    );
    assert!(answers.iter().any(|(c, _)| *c == 200), "{answers:?}");
    assert_eq!(s.post("/embed", &json!({ "inputs": "w5" })).0, 200);
    assert!(s.terminate().success());
}
