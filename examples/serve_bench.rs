//! `wgbert serve` throughput against `wgbert embed` on the same texts, as a ratio measured in
//! one run: N concurrent clients each send one text per request to the server; `wgbert embed`
//! gets all texts in one file. A figure, not a test.
//!
//! ```sh
//! cargo build --release && cargo run --release --example serve_bench -- \
//!     --bin target/release/wgbert --model ./model-dir [--clients 32] [--texts 2000] [--words 120]
//! ```
//! The `embed` time of a one-text run (start-up and loading) is subtracted from the full run.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

struct Opts {
    bin: String,
    model: String,
    clients: usize,
    texts: usize,
    words: usize,
    extra: Vec<String>,
}

fn parse() -> Result<Opts> {
    let mut o = Opts {
        bin: "target/release/wgbert".into(),
        model: String::new(),
        clients: 32,
        texts: 2000,
        words: 120,
        extra: Vec::new(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--bin" => o.bin = value()?,
            "--model" => o.model = value()?,
            "--clients" => o.clients = value()?.parse()?,
            "--texts" => o.texts = value()?.parse()?,
            "--words" => o.words = value()?.parse()?,
            "--" => o.extra = args.by_ref().collect(),
            other => bail!("unknown argument {other}"),
        }
    }
    if o.model.is_empty() || o.clients == 0 || o.texts == 0 {
        bail!("--model DIR is required; --clients and --texts must be at least 1");
    }
    Ok(o)
}

/// Deterministic texts of `words` words over the fixture's `w5`..`w511` vocabulary.
fn texts(n: usize, words: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let len = words / 2 + (i * 37) % (words / 2 + 1);
            (0..len)
                .map(|j| format!("w{}", 5 + (i * 131 + j * 17) % 507))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

fn wgbert(o: &Opts) -> Command {
    let mut c = Command::new(&o.bin);
    c.args(["--model", &o.model, "--quiet"]).args(&o.extra);
    c
}

/// Seconds `wgbert embed` takes on these texts.
fn embed_seconds(o: &Opts, texts: &[String], dir: &std::path::Path) -> Result<f64> {
    let input = dir.join(format!("texts-{}.txt", texts.len()));
    std::fs::write(&input, texts.join("\n") + "\n")?;
    let start = Instant::now();
    let status = wgbert(o)
        .args(["embed", "--normalize", "--input"])
        .arg(&input)
        .stdout(Stdio::null())
        .status()?;
    if !status.success() {
        bail!("wgbert embed failed: {status}");
    }
    Ok(start.elapsed().as_secs_f64())
}

/// Seconds N clients take to get every text embedded by the server, one text per request.
fn serve_seconds(o: &Opts, texts: &[String]) -> Result<f64> {
    let mut child = wgbert(o)
        .args(["serve", "--port", "0"])
        .stdout(Stdio::piped())
        .spawn()?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().context("stdout")?).read_line(&mut line)?;
    let base = line
        .trim()
        .strip_prefix("listening on ")
        .map(str::to_string);
    let result = (|| {
        let base = base.with_context(|| format!("unexpected first line {line:?}"))?;
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(300))
            .max_idle_connections_per_host(o.clients)
            .build();
        let next = AtomicUsize::new(0);
        let start = Instant::now();
        std::thread::scope(|scope| -> Result<()> {
            let workers: Vec<_> = (0..o.clients)
                .map(|_| {
                    scope.spawn(|| -> Result<()> {
                        loop {
                            let i = next.fetch_add(1, Ordering::SeqCst);
                            let Some(text) = texts.get(i) else {
                                return Ok(());
                            };
                            let body = serde_json::json!({ "inputs": text }).to_string();
                            agent
                                .post(&format!("{base}/embed"))
                                .set("Content-Type", "application/json")
                                .send_string(&body)?
                                .into_string()?;
                        }
                    })
                })
                .collect();
            for w in workers {
                w.join()
                    .map_err(|_| anyhow::anyhow!("a client panicked"))??;
            }
            Ok(())
        })?;
        Ok(start.elapsed().as_secs_f64())
    })();
    let _ = child.kill();
    let _ = child.wait();
    result
}

fn main() -> Result<()> {
    let o = parse()?;
    let all = texts(o.texts, o.words);
    let dir = tempfile::tempdir()?;
    let startup = embed_seconds(&o, &all[..1], dir.path())?;
    let embed = (embed_seconds(&o, &all, dir.path())? - startup).max(1e-9);
    let serve = serve_seconds(&o, &all)?;
    let (embed_tps, serve_tps) = (o.texts as f64 / embed, o.texts as f64 / serve);
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "texts {}  words <= {}  clients {}",
        o.texts, o.words, o.clients
    )?;
    writeln!(
        out,
        "wgbert embed: {embed_tps:.1} texts/s ({embed:.2} s after {startup:.2} s start-up)"
    )?;
    writeln!(
        out,
        "wgbert serve: {serve_tps:.1} texts/s ({serve:.2} s, one text per request)"
    )?;
    writeln!(out, "ratio serve/embed: {:.2}", serve_tps / embed_tps)?;
    Ok(())
}
