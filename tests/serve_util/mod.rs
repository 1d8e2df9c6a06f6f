//! `wgbert serve` under test: the real binary on a loopback port picked by the OS, on a
//! fixture model directory, with a small blocking HTTP client. The server is killed when the
//! guard drops, whatever the test did.
#![allow(dead_code)]

pub mod watch;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// How long a server may take to load a fixture model on a software adapter.
const START_TIMEOUT: Duration = Duration::from_secs(300);
/// How long one request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

pub struct Server {
    child: Child,
    pub base: String,
    agent: ureq::Agent,
    pub key: Option<String>,
    /// `HOST:PORT` of the gRPC services, when started with `--grpc-port`.
    pub grpc: Option<String>,
}

impl Server {
    /// Starts `wgbert --model DIR --quiet [global] serve --port 0 [args]` and waits for its
    /// `listening on` line.
    pub fn start(dir: &Path, global: &[&str], args: &[&str]) -> Server {
        Self::start_with_env(dir, global, args, &[])
    }

    /// [`Server::start`] with extra environment variables (the test-only fault hook).
    pub fn start_with_env(
        dir: &Path,
        global: &[&str],
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Server {
        let mut child = Command::new(assert_cmd::cargo::cargo_bin("wgbert"))
            .arg("--model")
            .arg(dir)
            .arg("--quiet")
            .args(global)
            .args(["serve", "--host", "127.0.0.1", "--port", "0"])
            .args(args)
            .env("HF_HUB_OFFLINE", "1")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting wgbert serve");
        let stdout = child.stdout.take().expect("piped stdout");
        let grpc = args.contains(&"--grpc-port");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let first = lines.next().and_then(|l| l.ok());
            let second = match grpc {
                true => lines.next().and_then(|l| l.ok()),
                false => None,
            };
            let _ = tx.send(first.map(|f| (f, second)));
            // Keep draining so the server never blocks on a full pipe.
            for _ in lines {}
        });
        let (line, second) = match rx.recv_timeout(START_TIMEOUT) {
            Ok(Some(lines)) => lines,
            other => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the server printed no listening line: {other:?}");
            }
        };
        let grpc = second.and_then(|l| l.strip_prefix("grpc listening on ").map(str::to_string));
        let base = line
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string();
        assert!(
            base.starts_with("http://127.0.0.1:") && !base.ends_with(":0"),
            "{base}"
        );
        let agent = ureq::AgentBuilder::new().timeout(REQUEST_TIMEOUT).build();
        Server {
            child,
            base,
            agent,
            key: None,
            grpc,
        }
    }

    fn send(&self, req: ureq::Request, body: Option<&str>) -> (u16, String) {
        let (status, _, body) = self.send_full(req, body);
        (status, body)
    }

    /// Sends a request; returns the status, the headers (lower-case names) and the body.
    fn send_full(
        &self,
        req: ureq::Request,
        body: Option<&str>,
    ) -> (u16, Vec<(String, String)>, String) {
        let req = match &self.key {
            Some(k) => req.set("Authorization", &format!("Bearer {k}")),
            None => req,
        };
        let result = match body {
            Some(b) => req.set("Content-Type", "application/json").send_string(b),
            None => req.call(),
        };
        let r = match result {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("request failed without an answer: {e}"),
        };
        let headers = r
            .headers_names()
            .into_iter()
            .map(|n| {
                let v = r.header(&n).unwrap_or_default().to_string();
                (n.to_lowercase(), v)
            })
            .collect();
        (r.status(), headers, r.into_string().expect("a text body"))
    }

    /// POSTs JSON; returns the status, the headers and the parsed answer.
    pub fn post_with_headers(
        &self,
        path: &str,
        body: &Value,
    ) -> (u16, Vec<(String, String)>, Value) {
        let req = self.agent.post(&format!("{}{path}", self.base));
        let (status, headers, text) = self.send_full(req, Some(&body.to_string()));
        let v = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{path}: answer is not JSON ({e}): {text}"));
        (status, headers, v)
    }

    /// Sends `method` to `path` with an optional raw body; returns the status and the body.
    pub fn request(&self, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
        let req = self.agent.request(method, &format!("{}{path}", self.base));
        self.send(req, body)
    }

    /// Sends `method` to `path` with a raw body of content type `ct`; returns the status and
    /// the body.
    pub fn request_with(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
        ct: &str,
    ) -> (u16, String) {
        let req = self.agent.request(method, &format!("{}{path}", self.base));
        let req = match &self.key {
            Some(k) => req.set("Authorization", &format!("Bearer {k}")),
            None => req,
        };
        let result = match body {
            Some(b) => req.set("Content-Type", ct).send_string(b),
            None => req.call(),
        };
        match result {
            Ok(r) => (r.status(), r.into_string().unwrap_or_default()),
            Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap_or_default()),
            Err(e) => panic!("request failed without an answer: {e}"),
        }
    }

    /// POSTs raw text; returns the status and the body.
    pub fn post_raw(&self, path: &str, body: &str) -> (u16, String) {
        self.send(self.agent.post(&format!("{}{path}", self.base)), Some(body))
    }

    /// POSTs JSON; returns the status and the parsed answer.
    pub fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let (status, text) = self.post_raw(path, &body.to_string());
        let v = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{path}: answer is not JSON ({e}): {text}"));
        (status, v)
    }

    /// POSTs JSON and expects 200.
    pub fn ok(&self, path: &str, body: &Value) -> Value {
        let (status, v) = self.post(path, body);
        assert_eq!(status, 200, "{path} {body}: {v}");
        v
    }

    /// POSTs JSON and expects `status` with a TEI error body; returns the message.
    pub fn fails(&self, path: &str, body: &Value, status: u16) -> String {
        let (got, v) = self.post(path, body);
        assert_eq!(got, status, "{path} {body}: {v}");
        assert!(v["error_type"].is_string(), "{v}");
        v["error"].as_str().expect("an error message").to_string()
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        self.send(self.agent.get(&format!("{}{path}", self.base)), None)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM.
    pub fn sigterm(&self) {
        let pid = self.pid().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status();
        assert!(sent.is_ok_and(|s| s.success()), "kill -TERM {pid}");
    }

    /// Waits (bounded) for the server to exit.
    pub fn wait_exit(mut self) -> ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().expect("waiting for the server") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the server did not exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends SIGTERM and waits (bounded) for the exit.
    pub fn terminate(self) -> ExitStatus {
        self.sigterm();
        self.wait_exit()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `wgbert ARGS` on the model in `dir`, which must succeed: its stdout as JSON lines.
pub fn cli_lines(dir: &Path, args: &[&str]) -> Vec<Value> {
    let out = super::common::model_dir::wgbert(dir)
        .args(args)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    super::common::model_dir::json_lines(&out)
}

/// Numbers from a JSON array (of arrays...), flattened.
pub fn floats(v: &Value) -> Vec<f64> {
    match v {
        Value::Array(items) => items.iter().flat_map(floats).collect(),
        Value::Number(n) => vec![n.as_f64().expect("a number")],
        other => panic!("not a number: {other}"),
    }
}

/// Asserts two JSON values equal, numbers to `tol`.
pub fn assert_json_close(got: &Value, want: &Value, tol: f64, at: &str) {
    match (got, want) {
        (Value::Number(a), Value::Number(b)) => {
            let (a, b) = (
                a.as_f64().unwrap_or(f64::NAN),
                b.as_f64().unwrap_or(f64::NAN),
            );
            assert!((a - b).abs() <= tol, "{at}: {a} vs {b}");
        }
        (Value::Array(a), Value::Array(b)) => {
            assert_eq!(a.len(), b.len(), "{at}: lengths");
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                assert_json_close(x, y, tol, &format!("{at}[{i}]"));
            }
        }
        (Value::Object(a), Value::Object(b)) => {
            let mut keys: Vec<_> = a.keys().collect();
            keys.sort();
            let mut want_keys: Vec<_> = b.keys().collect();
            want_keys.sort();
            assert_eq!(keys, want_keys, "{at}: keys");
            for k in a.keys() {
                assert_json_close(&a[k], &b[k], tol, &format!("{at}.{k}"));
            }
        }
        _ => assert_eq!(got, want, "{at}"),
    }
}

/// A one-label cross-encoder: the `cls_mean` classifier cut to its first label.
pub fn reranker_dir() -> tempfile::TempDir {
    let dir = super::common::model_dir::model_dir("cls_mean");
    let path = dir.path().join("model.safetensors");
    let bytes = std::fs::read(&path).expect("the fixture weights");
    let st = safetensors::SafeTensors::deserialize(&bytes).expect("safetensors");
    let mut kept: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for (name, t) in st.tensors() {
        assert_eq!(t.dtype(), safetensors::Dtype::F32, "{name}");
        let (shape, data) = match name.as_str() {
            "classifier.weight" => (vec![1, t.shape()[1]], t.data()[..t.shape()[1] * 4].to_vec()),
            "classifier.bias" => (vec![1], t.data()[..4].to_vec()),
            _ => (t.shape().to_vec(), t.data().to_vec()),
        };
        kept.push((name, shape, data));
    }
    let views: Vec<(String, safetensors::tensor::TensorView)> = kept
        .iter()
        .map(|(n, shape, data)| {
            let view =
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), data)
                    .expect("a tensor view");
            (n.clone(), view)
        })
        .collect();
    let out = safetensors::serialize(views, None).expect("serializing");
    std::fs::write(&path, out).expect("writing the weights");
    let cfg_path = dir.path().join("config.json");
    let mut cfg: Value =
        serde_json::from_str(&std::fs::read_to_string(&cfg_path).unwrap()).unwrap();
    cfg["id2label"] = json!({"0": "LABEL_0"});
    cfg["label2id"] = json!({"LABEL_0": 0});
    std::fs::write(&cfg_path, cfg.to_string()).unwrap();
    dir
}

/// The Python with the client libraries of tests/clients (`WGBERT_CLIENTS_PYTHON`), or
/// `None`: the checks are skipped, counted (a failure where `WGBERT_REQUIRE` lists
/// `clients`).
pub fn clients_python(checks: &str) -> Option<std::path::PathBuf> {
    if !super::common::require(super::common::Cap::Clients, checks) {
        return None;
    }
    std::env::var_os("WGBERT_CLIENTS_PYTHON").map(std::path::PathBuf::from)
}
