//! `wgbert serve` under faults and at its bounds: a device destroyed under the server, a
//! panic in one batch, a client that hangs up before its job runs, a hung GPU; bodies over
//! the payload limit, unauthenticated and shed requests answered before their bodies are
//! read, and a full queue. Faults come from the test-only hook (`WGBERT_TEST_FAULTS`, read
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
/// status line and head of the answer, read while the rest of the body is still unsent.
fn answer_before_body(s: &Server, path: &str, extra: &str, len: usize, sent: usize) -> String {
    let addr = s.base.trim_start_matches("http://").to_string();
    let mut c = TcpStream::connect(&addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n{extra}\
         Content-Length: {len}\r\n\r\n"
    );
    c.write_all(head.as_bytes()).unwrap();
    c.write_all(&vec![b' '; sent]).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        match c.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => panic!("{path}: no answer before the body was sent: {e}"),
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

/// A metric's value from `/metrics` (0 when absent).
fn metric(s: &Server, name: &str) -> f64 {
    let (_, text) = s.get("/metrics");
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

#[test]
fn a_destroyed_device_turns_health_to_503_and_in_flight_requests_fail() {
    let dir = model_dir("encoder_noprefix");
    let s = Server::start_with_env(
        dir.path(),
        &[],
        &[],
        &[("WGBERT_TEST_FAULTS", "destroy:79")],
    );
    assert_eq!(s.get("/health").0, 200);
    let heavy = heavy_body();
    let (statuses, lost_at) = std::thread::scope(|scope| {
        let busy: Vec<_> = (0..4)
            .map(|_| scope.spawn(|| s.post("/embed_all", &heavy).0))
            .collect();
        std::thread::sleep(Duration::from_millis(100));
        let killer = scope.spawn(|| s.post("/embed", &json!({ "inputs": "w5 w79" })).0);
        let killed = killer.join().unwrap();
        let lost_at = Instant::now();
        let mut statuses: Vec<u16> = busy.into_iter().map(|h| h.join().unwrap()).collect();
        statuses.push(killed);
        (statuses, lost_at)
    });
    // The request that destroyed the device gets an error; none hangs (each got an answer).
    assert!(*statuses.last().unwrap() >= 500, "{statuses:?}");
    // /health says so within a second of the loss, and stays so.
    let deadline = lost_at + Duration::from_secs(1);
    loop {
        let (status, body) = s.get("/health");
        if status == 503 {
            assert!(body.contains("lost"), "{body}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "/health still {status} a second after the loss"
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

#[test]
fn bodies_keys_and_load_are_refused_before_the_body_is_read() {
    let dir = model_dir("encoder_noprefix");
    let s = Server::start(
        dir.path(),
        &[],
        &["--api-key", "secret", "--max-concurrent-requests", "1"],
    );
    let auth = "Authorization: Bearer secret\r\n";
    // A 3 MB body: 413 at once, with only its first bytes sent.
    let head = answer_before_body(&s, "/embed", auth, 3_000_000, 1000);
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
    // No key: 401 before the body.
    let head = answer_before_body(&s, "/embed", "", 1_000_000, 10);
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");
    let head = answer_before_body(&s, "/embed", "Authorization: Bearer secreT\r\n", 100, 0);
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");
    // Over --max-concurrent-requests: 429 before the body.
    let mut keyed = s;
    keyed.key = Some("secret".into());
    let s = keyed;
    let heavy = heavy_body();
    std::thread::scope(|scope| {
        let busy = scope.spawn(|| s.post("/embed_all", &heavy).0);
        std::thread::sleep(Duration::from_millis(150));
        let head = answer_before_body(&s, "/embed", auth, 1_000_000, 10);
        assert!(head.starts_with("HTTP/1.1 429"), "{head}");
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
