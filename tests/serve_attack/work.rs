//! Attacks on the work a request asks for: the largest fill-mask and `/embed_all`, deep and
//! wide JSON with the peak memory per request, and 10,000 requests from 64 threads.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::common::model_dir::model_dir;
use super::serve_util::watch::{Probe, device_bytes, memory};
use super::serve_util::{self, Server, assert_json_close};
use super::wire::{MB, PROBE_BOUND, peak_growth, warm};

#[test]
fn the_largest_fill_mask_and_embed_all_are_bounded() {
    let dir = model_dir("mlm_v4");
    let s = Server::start(
        dir.path(),
        &["--dtype", "f32"],
        &["--max-response-bytes", "20000000"],
    );
    warm(&s);
    let before = memory(s.pid()).peak;
    let probe = Probe::start(&s);
    // 32 inputs of 64 masks at top_k 64: 131,072 candidates, refused before the model runs.
    let masks = vec!["[MASK]"; 64].join(" w9 ");
    let started = Instant::now();
    let m = s.fails(
        "/fill-mask",
        &json!({ "inputs": vec![masks.clone(); 32], "top_k": 64 }),
        413,
    );
    assert!(m.contains("--max-fill-mask-candidates 4096"), "{m}");
    assert!(started.elapsed() < Duration::from_secs(5));
    // At the limit: 64 masks at top_k 64, every candidate's sequence as the CLI gives it.
    let one = s.ok("/fill-mask", &json!({ "inputs": masks, "top_k": 64 }));
    let cands = &one[0]["masks"];
    assert_eq!(cands.as_array().unwrap().len(), 64);
    let cli = serve_util::cli_lines(
        dir.path(),
        &[
            "--dtype",
            "f32",
            "fill-mask",
            "--json",
            "--top-k",
            "64",
            &masks,
        ],
    );
    assert_json_close(&one[0], &cli[0], 1e-5, "the largest fill-mask = the CLI");
    // Every token's vector of 32 inputs of 512 tokens, streamed: 16,384 rows.
    let long = vec!["w9 w10 w11"; 200].join(" ");
    let all = s.ok("/embed_all", &json!({ "inputs": vec![long.clone(); 32] }));
    assert_eq!(all.as_array().unwrap().len(), 32);
    assert_eq!(all[31].as_array().unwrap().len(), 512);
    let alone = s.ok("/embed_all", &json!({ "inputs": long }));
    assert_json_close(&all[31], &alone[0], 1e-5, "a streamed row");
    // A normal request waits behind the largest batches on the one engine: its bound is
    // theirs (several seconds each on a software adapter).
    probe.finish(Duration::from_secs(60));
    peak_growth(&s, before, 256 * MB, "the largest fill-mask and /embed_all");
    assert!(s.terminate().success());

    // Over the answer's limit: refused before the model runs, naming the limit.
    let s = Server::start(
        dir.path(),
        &["--dtype", "f32"],
        &["--max-response-bytes", "1000000"],
    );
    let m = s.fails("/embed_all", &json!({ "inputs": vec![long; 32] }), 413);
    assert!(m.contains("--max-response-bytes 1000000"), "{m}");
    let wordy = format!(
        "{} {}",
        vec!["w9"; 400].join(" "),
        vec!["[MASK]"; 16].join(" ")
    );
    let m = s.fails("/fill-mask", &json!({ "inputs": wordy, "top_k": 64 }), 413);
    assert!(m.contains("--max-response-bytes"), "{m}");
    assert!(s.terminate().success());
}

#[test]
fn deep_and_wide_json_costs_a_small_multiple_of_its_size() {
    let dir = model_dir("encoder_noprefix");
    // Requests of many long texts are tokenized, then refused over --max-request-tokens:
    // all the parsing and tokenizing, none of the model's work.
    let s = Server::start(dir.path(), &[], &["--max-request-tokens", "2000"]);
    warm(&s);
    let before = memory(s.pid()).peak;
    let bytes_before = device_bytes(&s);
    let probe = Probe::start(&s);
    // Deep: refused at the first level that is not what the request type wants, in or out
    // of the inputs, and in an unknown field past serde_json's nesting limit.
    let deep = "[".repeat(1_500_000);
    let started = Instant::now();
    assert_eq!(s.post_raw("/embed", &deep).0, 422);
    assert_eq!(
        s.post_raw("/embed", &format!("{{\"inputs\": {deep}")).0,
        422
    );
    let junk = format!("{{\"inputs\": \"w5\", \"junk\": {deep}");
    assert_eq!(s.post_raw("/embed", &junk).0, 400);
    assert!(started.elapsed() < Duration::from_secs(5));
    // Wide: a huge unknown field, or many, is skipped unkept.
    let wide = format!(
        "{{\"inputs\": \"w5\", \"junk\": [{}0]}}",
        "0,".repeat(950_000)
    );
    let keys: Vec<String> = (0..120_000).map(|i| format!("\"k{i}\": 0")).collect();
    let many = format!("{{\"inputs\": [\"w5\"], {}}}", keys.join(", "));
    assert!(wide.len() > 1_800_000 && many.len() > 1_400_000);
    assert_eq!(s.post_raw("/embed", &wide).0, 200);
    assert_eq!(s.post_raw("/embed", &many).0, 200);
    // 32 at once of each, and of 32 inputs of 58 KB of words (tokenized, each a part at a
    // time, then refused): the peak per request stays within a small multiple of the
    // payload limit (2 MB).
    let words = vec!["w5 w6 w7"; 6500].join(" ");
    let texts = json!({ "inputs": vec![words; 32] }).to_string();
    assert!(texts.len() > 1_800_000 && texts.len() < 2_000_000);
    let mid = memory(s.pid()).peak;
    for (body, want) in [(&wide, 200), (&many, 200), (&texts, 413)] {
        std::thread::scope(|scope| {
            for _ in 0..32 {
                scope.spawn(|| assert_eq!(s.post_raw("/embed", body).0, want));
            }
        });
    }
    let per_request = peak_growth(&s, mid, 32 * 8 * MB, "32 concurrent 1.9 MB bodies") / 32;
    eprintln!(
        "peak growth per concurrent 1.9 MB request: {:.1} MiB ({:.1}x the payload limit)",
        per_request as f64 / MB as f64,
        per_request as f64 / 2e6
    );
    probe.finish(PROBE_BOUND);
    peak_growth(&s, before, 32 * 8 * MB, "deep and wide JSON");
    assert_eq!(device_bytes(&s), bytes_before, "device bytes");
    assert!(s.terminate().success());
}

#[test]
fn ten_thousand_requests_from_64_threads_all_get_their_answers() {
    let dir = model_dir("mlm_v4");
    let s = Server::start(
        dir.path(),
        &["--dtype", "f32"],
        &["--payload-limit", "5000"],
    );
    let mix: Vec<(&str, String, u16)> = vec![
        ("/embed", json!({ "inputs": "w5 w6 w7" }).to_string(), 200),
        (
            "/embed",
            json!({ "inputs": ["w8", "w9 w10"] }).to_string(),
            200,
        ),
        ("/tokenize", json!({ "inputs": "w11 w12" }).to_string(), 200),
        (
            "/fill-mask",
            json!({ "inputs": "w5 [MASK]", "top_k": 3 }).to_string(),
            200,
        ),
        ("/embed", "{\"inputs\": ".to_string(), 400),
        ("/embed", json!({ "inputs": "" }).to_string(), 400),
        (
            "/embed",
            format!("{{\"inputs\": \"w5\"{}}}", " ".repeat(6000)),
            413,
        ),
    ];
    let alone: Vec<(u16, String)> = mix
        .iter()
        .map(|(route, body, _)| s.post_raw(route, body))
        .collect();
    for ((route, _, want), (got, body)) in mix.iter().zip(&alone) {
        assert_eq!(got, want, "{route}: {body}");
    }
    let before = memory(s.pid()).peak;
    let bytes_before = device_bytes(&s);
    let next = AtomicUsize::new(0);
    let answered = AtomicUsize::new(0);
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..64 {
            scope.spawn(|| {
                loop {
                    let n = next.fetch_add(1, Ordering::SeqCst);
                    if n >= 10_000 {
                        return;
                    }
                    let k = (n * 7) % mix.len();
                    let (route, body, want) = &mix[k];
                    let (got, answer) = s.post_raw(route, body);
                    assert_eq!(got, *want, "{route} #{n}: {answer}");
                    if got == 200 {
                        let a: Value = serde_json::from_str(&answer).unwrap();
                        let b: Value = serde_json::from_str(&alone[k].1).unwrap();
                        assert_json_close(&a, &b, 1e-5, route);
                    }
                    answered.fetch_add(1, Ordering::SeqCst);
                }
            });
        }
    });
    assert_eq!(answered.load(Ordering::SeqCst), 10_000, "nothing lost");
    eprintln!("10,000 requests from 64 threads in {:?}", started.elapsed());
    peak_growth(&s, before, 128 * MB, "10,000 requests");
    let bytes = device_bytes(&s);
    assert!(
        bytes as f64 <= bytes_before as f64 * 1.05,
        "device bytes {bytes_before} -> {bytes}"
    );
    assert_eq!(s.get("/health").0, 200);
    assert!(s.terminate().success());
}
