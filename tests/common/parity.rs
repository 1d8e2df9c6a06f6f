//! The parity machinery of the model suites (tests/parity.rs, tests/family.rs): a fixture's
//! model loaded as the environment asks (`WGBERT_COOP`, `WGBERT_MAX_BINDING`: then every
//! fixture's embedding table must be held in row pieces), its inputs and expected rows, the
//! hidden-state comparisons (f32 to 1e-4, f16 by cosine >= 0.999) and the top-5 check of MLM
//! predictions against the reference's top 6 and log-sum-exp.

use serde_json::Value;
use wgbert::encoder::{Encoder, LoadOptions};
use wgbert::ops::DType;

use super::model_dir::{expected as fixture, floats, uints};

/// Logits of the reference closer than this are a tie: their ids may swap ranks. The
/// reference itself is within 2e-5 of the float64 NumPy model (make_fixtures.py).
pub const TIE: f64 = 1e-4;
/// A top-5 probability against exp(logit - logsumexp) of the reference, relative: an error d
/// in a logit or in the log-sum-exp is a relative error d in the probability, and wgbert's f32
/// logits are within a few 1e-5 of the reference's (lavapipe's worst: 2.7e-5).
pub const PROB_RTOL: f64 = 1e-4;

/// A fixture's model in `dtype`, on the test GPU.
pub fn load(dir: &std::path::Path, dtype: DType) -> Encoder {
    let opts = LoadOptions {
        dtype: Some(dtype),
        coop: super::coop_mode(),
        ..Default::default()
    };
    let enc =
        Encoder::load_on(super::gpu(), dir.to_str().unwrap(), &opts).expect("load fixture model");
    if super::test_gpu_options().max_binding.is_some() {
        let splits = enc.weight_splits();
        let table = splits
            .iter()
            .find(|s| s.name == "model.embeddings.tok_embeddings.weight");
        assert!(
            table.is_some_and(|t| t.pieces.len() > 1),
            "{}: WGBERT_MAX_BINDING is set but the table is whole: {splits:?}",
            dir.display()
        );
        eprintln!("{}: {splits:?}", dir.display());
    }
    enc
}

pub fn inputs(exp: &Value) -> Vec<Vec<u32>> {
    exp["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| uints(s).into_iter().map(|v| v as u32).collect())
        .collect()
}

pub fn matrix(v: &Value) -> Vec<Vec<f64>> {
    v.as_array().unwrap().iter().map(floats).collect()
}

/// The reference's hidden rows of each sequence, as (position, row): every token, or the
/// sample that `positions` lists. Asserts the counts first: one output per input, one row per
/// listed position (every token where none are listed), positions inside the sequence.
pub fn expected_rows(name: &str, exp: &Value, seqs: &[Vec<u32>]) -> Vec<Vec<(usize, Vec<f64>)>> {
    let outs = exp["outputs"].as_array().unwrap();
    assert_eq!(
        outs.len(),
        seqs.len(),
        "{name}: one expected output per input"
    );
    outs.iter()
        .zip(seqs)
        .enumerate()
        .map(|(s, (out, seq))| {
            let rows = matrix(&out["last_hidden_state"]);
            let positions: Vec<usize> = match out.get("positions") {
                Some(p) => uints(p).into_iter().map(|p| p as usize).collect(),
                None => (0..seq.len()).collect(),
            };
            assert_eq!(rows.len(), positions.len(), "{name} seq {s}: expected rows");
            assert!(positions.iter().all(|&p| p < seq.len()), "{name} seq {s}");
            positions.into_iter().zip(rows).collect()
        })
        .collect()
}

/// wgbert's hidden states of `seqs`, in one call; asserts one output per sequence, one row
/// per token and `hidden` features per row.
pub fn hidden_states(name: &str, enc: &Encoder, seqs: &[Vec<u32>]) -> Vec<Vec<Vec<f32>>> {
    let got = enc.hidden_states(seqs).unwrap();
    let hidden = enc.config().hidden_size;
    assert_eq!(got.len(), seqs.len(), "{name}: sequence count");
    for (s, (g, seq)) in got.iter().zip(seqs).enumerate() {
        assert_eq!(g.len(), seq.len(), "{name} seq {s}: token count");
        for (t, row) in g.iter().enumerate() {
            assert_eq!(row.len(), hidden, "{name} seq {s} token {t}: width");
        }
    }
    got
}

pub fn check_hidden_f32(name: &str) {
    let (dir, exp) = fixture(name);
    let enc = load(&dir, DType::F32);
    // A CPU adapter runs the DIRECT tiled matmul; a GPU, or lavapipe with
    // WGBERT_CPU_AS_GPU=1 (how CI runs this suite at GPU subgroup sizes), the staged one.
    let plan = enc.describe_plan(enc.capacity().min(512)).unwrap();
    let cpu = super::gpu().caps().cpu;
    // (A CPU adapter also stages an inner size off a multiple of 4, which DIRECT cannot.)
    let tiled = |l: &&str| l.contains("matmul/main[");
    let staged = plan.lines().filter(tiled).any(|l| !l.contains("DIRECT=1"));
    assert_eq!(plan.contains("DIRECT=1"), cpu, "{plan}");
    assert!(cpu || staged, "{plan}");
    let seqs = inputs(&exp);
    let want = expected_rows(name, &exp, &seqs);
    let got = hidden_states(name, &enc, &seqs);
    let mut worst = (0.0f64, 0, 0, 0);
    for (s, rows) in want.iter().enumerate() {
        for (t, w) in rows {
            let g = &got[s][*t];
            assert_eq!(g.len(), w.len(), "{name} seq {s} token {t}: expected width");
            for (c, (a, b)) in g.iter().zip(w).enumerate() {
                let e = (*a as f64 - b).abs();
                if e > worst.0 || !a.is_finite() {
                    worst = (if a.is_finite() { e } else { f64::INFINITY }, s, *t, c);
                }
            }
        }
    }
    eprintln!("{name} f32: max abs error {:.2e}", worst.0);
    assert!(
        worst.0 <= 1e-4,
        "{name}: max abs error {:.3e} at seq {} token {} feature {}",
        worst.0,
        worst.1,
        worst.2,
        worst.3
    );
}

pub fn cosine(a: &[f32], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * y).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|y| y * y).sum::<f64>().sqrt();
    dot / (na * nb)
}

pub fn check_hidden_f16(name: &str) {
    if !super::require(super::Cap::F16, &format!("{name} f16 parity")) {
        return;
    }
    let (dir, exp) = fixture(name);
    let enc = load(&dir, DType::F16);
    // scripts/test_coop.sh runs this with WGBERT_COOP=1: the tensor-core kernels must be in
    // the plan (at run time the subgroup matmul still takes runs of at most 32 rows).
    if super::coop_mode() == wgbert::ops::coop::Mode::Required {
        let plan = enc.describe_plan(enc.capacity().min(512)).unwrap();
        assert!(plan.contains("matmul_coop/"), "{plan}");
        assert!(plan.contains("attention_coop/"), "{plan}");
    }
    let seqs = inputs(&exp);
    let want = expected_rows(name, &exp, &seqs);
    let got = hidden_states(name, &enc, &seqs);
    let mut least = 1.0f64;
    for (s, rows) in want.iter().enumerate() {
        for (t, w) in rows {
            let g = &got[s][*t];
            assert_eq!(
                g.len(),
                w.len(),
                "{name} f16 seq {s} token {t}: expected width"
            );
            let cos = cosine(g, w);
            assert!(
                cos >= 0.999,
                "{name} f16: cosine {cos:.6} at seq {s} token {t}"
            );
            least = least.min(cos);
        }
    }
    eprintln!("{name} f16: least cosine {least:.6}");
}

/// The reference's top 6 of one position: ids, logits, and the log-sum-exp over the vocabulary.
#[derive(Debug)]
pub struct Top6 {
    pub ids: Vec<u64>,
    pub logits: Vec<f64>,
    pub lse: f64,
}

/// wgbert's top 5 `got` (id, probability) at one position against the reference: rank r
/// holds the reference's id at rank r, or, where the reference's logits tie (within `TIE`),
/// an id of the top 6 whose logit ties rank r's (so a 5th id is judged against the 6th), each
/// id once; each probability is exp(logit - lse) of the reference within `PROB_RTOL`.
/// Returns the largest relative probability error, or what is wrong.
pub fn check_top5(got: &[(u32, f32)], want: &Top6) -> Result<f64, String> {
    if got.len() != 5 || want.ids.len() != 6 || want.logits.len() != 6 {
        return Err(format!("{} candidates, reference {want:?}", got.len()));
    }
    let mut worst = 0.0f64;
    for (r, &(id, p)) in got.iter().enumerate() {
        let id = id as u64;
        let tie = |j: usize| j == r || (want.logits[j] - want.logits[r]).abs() < TIE;
        let Some(j) = (0..6).find(|&j| want.ids[j] == id && tie(j)) else {
            return Err(format!(
                "rank {r} is id {id}; the reference's top 6 are {want:?}"
            ));
        };
        if got[..r].iter().any(|c| c.0 as u64 == id) {
            return Err(format!("id {id} twice in {got:?}"));
        }
        let p_ref = (want.logits[j] - want.lse).exp();
        let err = (p as f64 - p_ref).abs() / p_ref;
        if err.is_nan() || err > PROB_RTOL {
            return Err(format!(
                "rank {r} (id {id}) probability {p}, reference {p_ref} (relative error {err:.2e})"
            ));
        }
        worst = worst.max(err);
    }
    Ok(worst)
}
