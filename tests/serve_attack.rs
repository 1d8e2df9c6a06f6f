//! `wgbert serve` under attack, on loopback: slowloris at twice the concurrency limit,
//! connections bounded per client address and in total, a flood of refused requests
//! (missing key, declared and chunked bodies over the limit, malformed and oversized
//! batches) written whole before the answer is read, the maximal fill-mask and `/embed_all`,
//! deep and wide JSON with the peak memory per request, and 10,000 requests from 64 threads.
//!
//! Throughout, a normal client (`serve_util::Probe`) sends `/embed` every 100 ms and must
//! get 200 within a stated bound; the server's resident memory (`VmHWM`, its peak) and
//! device bytes must stay within stated bounds; every request gets its answer. Each test
//! fails when its guard is removed (a slot taken before the body, no header or body timeout,
//! no per-client bound, refused bodies not drained, no limit on candidates or answer size,
//! bodies parsed into untyped trees).
//!
//! The bounds are generous for a loaded 2-core machine running lavapipe, yet each is far
//! below what the unguarded server does: minutes of 429s, resets, gigabytes.

mod common;
mod serve_util;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::model_dir::model_dir;
use serde_json::{Value, json};
use serve_util::{Probe, Server, assert_json_close, device_bytes, memory};

const MB: u64 = 1 << 20;
/// A normal `/embed` under attack answers within this.
const PROBE_BOUND: Duration = Duration::from_secs(10);

fn addr(s: &Server) -> SocketAddr {
    s.base
        .trim_start_matches("http://")
        .parse()
        .expect("the server's address")
}

/// A connection from `127.0.0.<host>` (every 127/8 address is loopback on Linux).
fn connect_from(s: &Server, host: u8) -> TcpStream {
    let sock =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("a socket");
    let from = SocketAddr::from((Ipv4Addr::new(127, 0, 0, host), 0));
    sock.bind(&from.into()).expect("binding a loopback address");
    sock.connect(&addr(s).into()).expect("connecting");
    let c: TcpStream = sock.into();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    c
}

/// Reads until the end of an answer's head (or the connection's end); returns the head.
fn read_head(c: &mut TcpStream) -> String {
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        match c.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

/// Sends a whole request (head, then the body in one write), as clients that write before
/// reading do, and returns the answer's status; a reset or broken pipe panics.
fn whole(s: &Server, head: &str, body: &[u8]) -> u16 {
    let mut c = TcpStream::connect(addr(s)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    c.write_all(head.as_bytes())
        .and_then(|()| c.write_all(body))
        .unwrap_or_else(|e| panic!("the request was reset while sent: {e}\n{head}"));
    let head = read_head(&mut c);
    head.get(9..12)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no answer: {head:?}"))
}

fn post_head(path: &str, extra: &str, len: usize) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{extra}\
         Content-Length: {len}\r\n\r\n"
    )
}

/// A chunked body of `n` bytes of JSON whitespace after `{"inputs": "w5"`, in 64 KiB chunks.
fn chunked(n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let first = br#"{"inputs": "w5""#;
    out.extend_from_slice(format!("{:x}\r\n", first.len()).as_bytes());
    out.extend_from_slice(first);
    out.extend_from_slice(b"\r\n");
    let chunk = vec![b' '; 65536];
    for _ in 0..n.div_ceil(chunk.len()) {
        out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        out.extend_from_slice(&chunk);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"1\r\n}\r\n0\r\n\r\n");
    out
}

/// The peak memory's growth from `before`, checked against `bound` bytes.
fn peak_growth(s: &Server, before: u64, bound: u64, what: &str) -> u64 {
    let grew = memory(s.pid()).peak.saturating_sub(before);
    eprintln!("{what}: peak resident memory grew by {} MiB", grew / MB);
    assert!(
        grew <= bound,
        "{what}: the server's peak memory grew by {} MiB, over {} MiB",
        grew / MB,
        bound / MB
    );
    grew
}

/// Warms the server up (pipelines, buffers) so that later growth is the attack's.
fn warm(s: &Server) {
    for _ in 0..3 {
        s.ok("/embed", &json!({ "inputs": ["w5 w6 w7", "w8"] }));
    }
}

#[test]
fn slowloris_at_twice_the_concurrency_limit_locks_no_one_out() {
    let dir = model_dir("encoder_noprefix");
    let s = Server::start(
        dir.path(),
        &[],
        &[
            "--max-concurrent-requests",
            "4",
            "--header-timeout",
            "4",
            "--body-timeout",
            "4",
        ],
    );
    warm(&s);
    let before = memory(s.pid()).peak;
    let bytes_before = device_bytes(&s);
    // Twice the limit of connections declare a body of 100 bytes and trickle it, one byte
    // every 300 ms; 4 more trickle a request head.
    let mut heads: Vec<TcpStream> = (0..4)
        .map(|_| {
            let mut c = TcpStream::connect(addr(&s)).unwrap();
            c.write_all(b"POST /embed HTTP/1.1\r\nHost: x\r\n").unwrap();
            c
        })
        .collect();
    let mut bodies: Vec<TcpStream> = (0..8)
        .map(|_| {
            let mut c = TcpStream::connect(addr(&s)).unwrap();
            c.write_all(post_head("/embed", "", 100).as_bytes())
                .unwrap();
            c.write_all(b"{").unwrap();
            c
        })
        .collect();
    let probe = Probe::start(&s);
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(3) {
        for c in heads.iter_mut() {
            let _ = c.write_all(b"X");
        }
        for c in bodies.iter_mut() {
            let _ = c.write_all(b" ");
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    // Normal requests went through all along: slots are taken only by whole bodies.
    let slowest = probe.finish(PROBE_BOUND);
    eprintln!("slowest /embed beside the slowloris: {slowest:?}");
    // The slow ones are answered 408 once their time is up, and closed.
    for c in heads.iter_mut().chain(bodies.iter_mut()) {
        let head = read_head(c);
        assert!(head.starts_with("HTTP/1.1 408"), "{head:?}");
    }
    assert!(
        started.elapsed() < Duration::from_secs(12),
        "the timeouts took {:?}",
        started.elapsed()
    );
    peak_growth(&s, before, 64 * MB, "slowloris");
    assert_eq!(device_bytes(&s), bytes_before, "device bytes");
    assert_eq!(s.get("/health").0, 200);
    assert!(s.terminate().success());
}

#[test]
fn connections_are_bounded_per_client_and_in_total() {
    let dir = model_dir("encoder_noprefix");
    let s = Server::start(
        dir.path(),
        &[],
        &[
            "--max-connections",
            "10",
            "--max-connections-per-client",
            "3",
        ],
    );
    // Three idle connections from 127.0.0.2 are its share; a fourth is answered 429.
    let mine: Vec<TcpStream> = (0..3).map(|_| connect_from(&s, 2)).collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut fourth = connect_from(&s, 2);
    let head = read_head(&mut fourth);
    assert!(head.starts_with("HTTP/1.1 429"), "{head:?}");
    // Another client is served meanwhile (one pooled connection from 127.0.0.1).
    assert_eq!(s.get("/health").0, 200);
    // 3 + 1 + 6 more is the total; the next is answered 503.
    let others: Vec<TcpStream> = (3..5)
        .flat_map(|h| (0..3).map(move |_| h))
        .map(|h| connect_from(&s, h))
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut over = connect_from(&s, 5);
    let head = read_head(&mut over);
    assert!(head.starts_with("HTTP/1.1 503"), "{head:?}");
    // Room again once some close.
    drop(others);
    drop(mine);
    std::thread::sleep(Duration::from_millis(300));
    let mut again = connect_from(&s, 5);
    again
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let head = read_head(&mut again);
    assert!(head.starts_with("HTTP/1.1 200"), "{head:?}");
    let (_, metrics) = s.get("/metrics");
    for limit in ["per_client", "total"] {
        let line = format!("wgbert_connections_refused_total{{limit=\"{limit}\"}} 1");
        assert!(metrics.contains(&line), "{line} in\n{metrics}");
    }
    assert!(s.terminate().success());
}

#[test]
fn a_flood_of_refused_requests_gets_every_answer() {
    let dir = model_dir("encoder_noprefix");
    let mut s = Server::start(
        dir.path(),
        &[],
        &[
            "--api-key",
            "k",
            "--payload-limit",
            "200000",
            "--max-client-batch-size",
            "4",
        ],
    );
    s.key = Some("k".into());
    warm(&s);
    let before = memory(s.pid()).peak;
    let bytes_before = device_bytes(&s);
    let probe = Probe::start(&s);
    let key = "Authorization: Bearer k\r\n";
    let answered = AtomicUsize::new(0);
    let big = vec![b' '; 1_000_000];
    let chunked_body = chunked(1_000_000);
    let started = Instant::now();
    std::thread::scope(|scope| {
        for t in 0..8 {
            let (s, big, chunked_body, answered) = (&s, &big, &chunked_body, &answered);
            scope.spawn(move || {
                for i in 0..40 {
                    let (status, want) = match (t + i) % 5 {
                        // No key, a body over the limit: 401, drained.
                        0 => (whole(s, &post_head("/embed", "", big.len()), big), 401),
                        // Declared over the limit: 413 before it is read, drained.
                        1 => (whole(s, &post_head("/embed", key, big.len()), big), 413),
                        // Chunked, over the limit once read: 413, the rest drained.
                        2 => {
                            let head = format!(
                                "POST /embed HTTP/1.1\r\nHost: x\r\nContent-Type: \
                                 application/json\r\n{key}Transfer-Encoding: chunked\r\n\r\n"
                            );
                            (whole(s, &head, chunked_body), 413)
                        }
                        // Malformed: 400.
                        3 => (whole(s, &post_head("/embed", key, 9), b"{\"inputs\""), 400),
                        // Over --max-client-batch-size: 422, counted while parsed.
                        _ => {
                            let body = json!({ "inputs": vec!["w5"; 5000] }).to_string();
                            let head = post_head("/embed", key, body.len());
                            (whole(s, &head, body.as_bytes()), 422)
                        }
                    };
                    assert_eq!(status, want, "request {t}/{i}");
                    answered.fetch_add(1, Ordering::SeqCst);
                }
            });
        }
    });
    assert_eq!(
        answered.load(Ordering::SeqCst),
        320,
        "every request answered"
    );
    eprintln!("320 refused requests in {:?}", started.elapsed());
    probe.finish(PROBE_BOUND);
    peak_growth(&s, before, 128 * MB, "refused flood");
    assert_eq!(device_bytes(&s), bytes_before, "device bytes");
    assert_eq!(s.get("/health").0, 200);
    assert!(s.terminate().success());
}

/// Python's `http.client`, `requests` and `httpx` send 3 MB bodies, 20 times each, to a
/// route that refuses them (413 over the payload limit, 401 without the key): every one
/// gets its status, none a reset or a broken pipe.
#[test]
fn python_clients_sending_3_mb_get_every_refusal() {
    let Some(python) = serve_util::clients_python("refused 3 MB bodies from Python clients") else {
        return;
    };
    let dir = model_dir("encoder_noprefix");
    let s = Server::start(dir.path(), &[], &["--api-key", "k"]);
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/refusals.py");
    for (auth, want) in [("Bearer k", 413), ("Bearer wrong", 401)] {
        let out = std::process::Command::new(&python)
            .arg(&script)
            .args([&s.base, "/embed", "3000000", "20", auth])
            .output()
            .expect("running the Python clients");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let got: Value = serde_json::from_slice(&out.stdout).expect("JSON");
        for client in ["http.client", "requests", "httpx"] {
            let answers = got[client].as_array().unwrap();
            assert_eq!(answers.len(), 20, "{client}: {got}");
            assert!(
                answers.iter().all(|a| a == want),
                "{client} expected {want} every time: {answers:?}"
            );
        }
    }
    assert_eq!(s.get("/health").0, 200);
    assert!(s.terminate().success());
}

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

/// A chunked body past `--payload-limit`: answered 413 once the limit is passed, while the
/// client is still sending; the client may then send the rest (read and dropped) and sees
/// the connection close cleanly, not a reset.
#[test]
fn a_chunked_body_over_the_limit_is_answered_not_reset() {
    let dir = model_dir("encoder_noprefix");
    let s = Server::start(dir.path(), &[], &[]);
    let head = "POST /embed HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                Transfer-Encoding: chunked\r\n\r\n";
    let body = chunked(6_000_000);
    let (first, rest) = body.split_at(3_000_000);
    let mut c = TcpStream::connect(addr(&s)).unwrap();
    c.write_all(head.as_bytes()).unwrap();
    c.write_all(first).unwrap();
    let answer = read_head(&mut c);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer:?}");
    // The rest goes through after the answer: read and dropped, then a clean close.
    std::thread::sleep(Duration::from_millis(200));
    c.write_all(rest)
        .expect("the rest of the body is read, not reset");
    let mut tail = Vec::new();
    c.read_to_end(&mut tail).expect("a clean close");
    // Within the limit, the same body shape is served.
    assert_eq!(whole(&s, head, &chunked(100_000)), 200);
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
