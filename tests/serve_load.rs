//! `wgbert serve` under load: 64 clients send 2,000 mixed requests (valid, malformed, empty,
//! too long) at once. Every valid answer must equal the same request's answer alone to 1e-5,
//! every invalid one must get its status, nothing may hang, and the server must stay healthy.

mod common;
mod serve_util;

use std::sync::atomic::{AtomicUsize, Ordering};

use common::model_dir::model_dir;
use serde_json::{Value, json};
use serve_util::{Server, assert_json_close};

const CLIENTS: usize = 64;
const REQUESTS: usize = 2000;

/// The request mix: (route, body, expected status).
fn requests() -> Vec<(&'static str, Value, u16)> {
    let mut out = Vec::new();
    for i in 0..24usize {
        let words: Vec<String> = (0..1 + i % 7)
            .map(|j| format!("w{}", 5 + (i * 13 + j * 7) % 500))
            .collect();
        let text = words.join(" ");
        out.push(("/embed", json!({ "inputs": text }), 200));
        if i % 3 == 0 {
            out.push(("/embed", json!({ "inputs": [text.clone(), "w5 w6"] }), 200));
            out.push((
                "/fill-mask",
                json!({ "inputs": format!("{text} [MASK]"), "top_k": 2 }),
                200,
            ));
            out.push((
                "/v1/embeddings",
                json!({ "input": text, "model": "m" }),
                200,
            ));
        }
    }
    out.push((
        "/embed",
        json!({ "inputs": vec!["w9"; 700].join(" "), "truncate": false }),
        422,
    ));
    out.push(("/embed", json!({ "inputs": [] }), 400));
    out.push(("/embed", json!({ "inputs": 7 }), 422));
    out.push(("/fill-mask", json!({ "inputs": "no mask here" }), 422));
    out
}

#[test]
fn many_clients_get_the_answers_they_would_get_alone() {
    let dir = model_dir("mlm_v4");
    let s = Server::start(dir.path(), &["--dtype", "f32"], &[]);
    let mix = requests();
    // Each request alone first: the reference answers.
    let alone: Vec<(u16, Value)> = mix
        .iter()
        .map(|(route, body, _)| s.post(route, body))
        .collect();
    for ((route, body, status), (got, answer)) in mix.iter().zip(&alone) {
        assert_eq!(got, status, "{route} {body}: {answer}");
    }
    let next = AtomicUsize::new(0);
    let failures = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..CLIENTS {
            scope.spawn(|| {
                loop {
                    let n = next.fetch_add(1, Ordering::SeqCst);
                    if n >= REQUESTS {
                        return;
                    }
                    // A stride co-prime with the mix's length spreads kinds across clients.
                    let k = (n * 7) % mix.len();
                    let (route, body, status) = &mix[k];
                    let (got, answer) = s.post(route, body);
                    if got != *status {
                        failures.fetch_add(1, Ordering::SeqCst);
                        eprintln!("{route} {body}: status {got}, expected {status}: {answer}");
                        continue;
                    }
                    if got == 200 {
                        assert_json_close(&answer, &alone[k].1, 1e-5, &format!("{route} #{k}"));
                    }
                }
            });
        }
    });
    assert_eq!(
        failures.load(Ordering::SeqCst),
        0,
        "requests got the wrong status"
    );
    assert_eq!(s.get("/health").0, 200);
    let (_, metrics) = s.get("/metrics");
    let embed_ok: f64 = metrics
        .lines()
        .find(|l| l.starts_with("wgbert_requests_total{route=\"/embed\",status=\"200\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .expect("a count of /embed answers");
    assert!(embed_ok >= (REQUESTS / 2) as f64, "{embed_ok}");
    assert!(s.terminate().success());
}
