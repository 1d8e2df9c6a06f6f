//! A long sequence end to end: one sequence of 2100 tokens through a small random ModernBERT
//! with global and windowed layers, f16 against the same weights in f32 (the path the parity
//! suite checks against transformers): every token's hidden state within cosine 0.999.
//! With `WGBERT_COOP=1` (scripts/test_coop.sh on Mesa 26) the f16 plan must run the
//! tensor-core matmul and attention, and the test asserts it does.

mod common;

use wgbert::encoder::Encoder;
use wgbert::ops::DType;
use wgbert::ops::coop::Mode;

const TOKENS: usize = 2100;

/// Hidden 64 in 4 heads of 16, GeGLU 96, 3 layers (global, local, local), window 64 each side.
const MODEL: common::TinyModel = common::TinyModel {
    vocab: 512,
    hidden: 64,
    intermediate: 96,
    layers: 3,
    heads: 4,
    global_every: 3,
    window: 128,
};

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum();
    let na: f64 = a.iter().map(|&x| x as f64 * x as f64).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|&x| x as f64 * x as f64).sum::<f64>().sqrt();
    dot / (na * nb).max(1e-30)
}

#[test]
fn long_sequence_f16_matches_f32() {
    let gpu = common::gpu();
    if !common::require(common::Cap::F16, "a 2100-token sequence in f16") {
        return;
    }
    let config = || common::random_config(&MODEL);
    let ids: Vec<u32> = (0..TOKENS as u64)
        .map(|i| 3 + ((i * 2_654_435_761) >> 7) as u32 % 500)
        .collect();
    let f32_enc = Encoder::random(gpu.clone(), config(), Some(DType::F32), Some(TOKENS)).unwrap();
    let f16_enc = Encoder::random(gpu.clone(), config(), Some(DType::F16), Some(TOKENS)).unwrap();
    let plan = f16_enc.describe_plan(TOKENS).unwrap();
    if common::coop_mode() == Mode::Required {
        assert!(plan.contains("matmul_coop/"), "{plan}");
        assert!(plan.contains("attention_coop/"), "{plan}");
        assert!(!plan.contains("EMULATE"), "{plan}");
    }
    let want = f32_enc.hidden_states(std::slice::from_ref(&ids)).unwrap();
    let got = f16_enc.hidden_states(std::slice::from_ref(&ids)).unwrap();
    assert_eq!(got[0].len(), TOKENS);
    let worst = got[0]
        .iter()
        .zip(&want[0])
        .map(|(g, w)| cosine(g, w))
        .enumerate()
        .fold((0, 1.0f64), |a, (i, c)| if c < a.1 { (i, c) } else { a });
    assert!(
        worst.1 >= 0.999,
        "token {} of {TOKENS}: cosine {} (f16 vs f32)",
        worst.0,
        worst.1
    );
}
