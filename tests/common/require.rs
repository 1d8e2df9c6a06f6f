//! Checks that need something the adapter or the machine may lack (f16, subgroups, timestamp
//! queries, cooperative matrices, ModernBERT's tokenizer) ask `require` first, the one way a
//! test skips. A skip is never silent: it is named on stderr, appended to the file
//! `WGBERT_SKIP_LOG` names (one line per skip: test, capability, why, which checks), which
//! `scripts/test.sh` and `scripts/test_coop.sh` count at the end, and it is a failure when
//! `WGBERT_REQUIRE` (a comma list of `Cap::key`s: `f16,subgroups,timestamps,coop,tokenizer,clients,pipeline-cache`)
//! lists the capability, as CI does for each suite.

use std::io::Write;

/// What a check may need.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cap {
    /// `SHADER_F16`: f16 storage.
    F16,
    /// Subgroup operations.
    Subgroups,
    /// Timestamp queries (profiling, the tuner's timings).
    Timestamps,
    /// Cooperative matrices the tensor-core matmul and attention can both run on.
    Coop,
    /// ModernBERT's tokenizer.json, named by `WGBERT_TOKENIZER`.
    Tokenizer,
    /// A Python with the HTTP client libraries of tests/clients, named by
    /// `WGBERT_CLIENTS_PYTHON`.
    Clients,
    /// The driver's pipeline cache (wgpu's `PIPELINE_CACHE`, Vulkan).
    PipelineCache,
}

impl Cap {
    pub const ALL: [Cap; 7] = [
        Cap::F16,
        Cap::Subgroups,
        Cap::Timestamps,
        Cap::Coop,
        Cap::Tokenizer,
        Cap::Clients,
        Cap::PipelineCache,
    ];

    /// Its name in `WGBERT_REQUIRE` and in the skip log.
    pub fn key(self) -> &'static str {
        match self {
            Cap::F16 => "f16",
            Cap::Subgroups => "subgroups",
            Cap::Timestamps => "timestamps",
            Cap::Coop => "coop",
            Cap::Tokenizer => "tokenizer",
            Cap::Clients => "clients",
            Cap::PipelineCache => "pipeline-cache",
        }
    }

    /// Its name in words.
    pub fn words(self) -> &'static str {
        match self {
            Cap::F16 => "f16 (SHADER_F16)",
            Cap::Subgroups => "subgroup operations",
            Cap::Timestamps => "timestamp queries",
            Cap::Coop => "cooperative matrices",
            Cap::Tokenizer => "ModernBERT's tokenizer (WGBERT_TOKENIZER)",
            Cap::Clients => "the HTTP client libraries (WGBERT_CLIENTS_PYTHON)",
            Cap::PipelineCache => "the driver's pipeline cache (Vulkan)",
        }
    }

    /// `None` where it is there, else why not.
    pub fn missing(self) -> Option<String> {
        let var = match self {
            Cap::Tokenizer => Some("WGBERT_TOKENIZER"),
            Cap::Clients => Some("WGBERT_CLIENTS_PYTHON"),
            _ => None,
        };
        if let Some(var) = var {
            return match std::env::var_os(var) {
                Some(v) if !v.is_empty() => None,
                _ => Some(format!("{var} is not set")),
            };
        }
        let gpu = super::gpu();
        let caps = gpu.caps();
        let adapter = &gpu.info().name;
        let lacks = |what: &str| Some(format!("the adapter ({adapter}) has no {what}"));
        match self {
            Cap::F16 if !caps.f16 => lacks("SHADER_F16"),
            Cap::Subgroups if !caps.subgroups => lacks("subgroup operations"),
            Cap::Timestamps if !caps.timestamps => lacks("timestamp queries"),
            // wgpu has the driver's pipeline cache on Vulkan, for every Vulkan adapter.
            Cap::PipelineCache if gpu.info().backend != wgpu::Backend::Vulkan => Some(format!(
                "the adapter ({adapter}) is not a Vulkan one: no pipeline cache"
            )),
            Cap::Coop => wgbert::ops::matmul::coop::supported(caps)
                .and_then(|_| wgbert::ops::attention::coop::supported(caps))
                .err()
                .map(|why| {
                    format!("the adapter ({adapter}) cannot run the tensor-core kernels ({why})")
                }),
            _ => None,
        }
    }
}

/// Keys of `WGBERT_REQUIRE` that scripts check, not tests: `gpu-compilers`
/// (scripts/gpu_compilers.sh: every chip's driver and shim set up).
const SCRIPT_KEYS: [&str; 1] = ["gpu-compilers"];

/// The capabilities `WGBERT_REQUIRE` lists; a name it does not know is a failure (a typo
/// must not turn a required check back into a skip).
pub fn required() -> Vec<Cap> {
    let list = std::env::var("WGBERT_REQUIRE").unwrap_or_default();
    list.split(',')
        .map(str::trim)
        .filter(|k| !k.is_empty() && !SCRIPT_KEYS.contains(k))
        .map(|k| {
            Cap::ALL
                .into_iter()
                .find(|c| c.key() == k)
                .unwrap_or_else(|| {
                    let known: Vec<&str> = Cap::ALL.iter().map(|c| c.key()).collect();
                    panic!("WGBERT_REQUIRE={list}: unknown capability {k:?} (known: {known:?})")
                })
        })
        .collect()
}

/// Whether the checks described by `checks` can run: true where `cap` is there. Where it is
/// not, they are skipped (false), said on stderr and logged, or, when `WGBERT_REQUIRE`
/// lists `cap`, the test fails naming it.
pub fn require(cap: Cap, checks: &str) -> bool {
    // Read first, so that a misspelt list fails on any machine.
    let required = required();
    let Some(why) = cap.missing() else {
        return true;
    };
    if required.contains(&cap) {
        panic!(
            "{} required by WGBERT_REQUIRE={}, but {why}: {checks} cannot run",
            cap.words(),
            std::env::var("WGBERT_REQUIRE").unwrap_or_default()
        );
    }
    skip(cap.key(), &why, checks);
    false
}

/// `require` for the cases of a property test: asked once per process and capability (the
/// first case's `checks` name the skip), its answer kept for the other cases, so a test of
/// many random cases that falls back where `cap` is missing (f32 for f16, the workgroup
/// kernel for subgroups) is counted once, or fails where `WGBERT_REQUIRE` lists `cap`.
pub fn require_once(cap: Cap, checks: &str) -> bool {
    static ASKED: std::sync::Mutex<Vec<(Cap, bool)>> = std::sync::Mutex::new(Vec::new());
    let mut asked = ASKED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(&(_, answer)) = asked.iter().find(|(c, _)| *c == cap) {
        return answer;
    }
    let answer = require(cap, checks);
    asked.push((cap, answer));
    answer
}

/// Records a skip that is no capability's (a check meant for another setting, such as
/// `WGBERT_COOP=1`): on stderr and in `WGBERT_SKIP_LOG`, never a failure.
pub fn skip(key: &str, why: &str, checks: &str) {
    let test = format!(
        "{}::{}",
        binary_name(),
        std::thread::current().name().unwrap_or("?")
    );
    eprintln!("skipped ({key}): {checks}: {why}");
    let Some(path) = std::env::var_os("WGBERT_SKIP_LOG") else {
        return;
    };
    let clean = |s: &str| s.replace(['\t', '\n'], " ");
    let line = format!("{test}\t{key}\t{}\t{}\n", clean(why), clean(checks));
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| f.write_all(line.as_bytes()));
    if let Err(e) = written {
        panic!("WGBERT_SKIP_LOG={}: {e}", path.to_string_lossy());
    }
}

/// The test binary's name without cargo's hash (`parity-0123abcd` is `parity`).
fn binary_name() -> String {
    let exe = std::env::current_exe().ok();
    let stem = exe
        .as_deref()
        .and_then(|p| p.file_stem())
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    match stem.rsplit_once('-') {
        Some((name, hash)) if hash.chars().all(|c| c.is_ascii_hexdigit()) => name.to_string(),
        _ => stem,
    }
}
