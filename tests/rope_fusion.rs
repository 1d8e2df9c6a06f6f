//! RoPE fused into the Wqkv projection (`matmul::record_rope`) against the separate pass, at
//! the model level: the same random ModernBERT (heads of 64) with the tiled matmul pinned to
//! 32-column tiles (narrower than a head: the projection stores plain values and the rope
//! pass rotates them) and to 64-column tiles (whole heads: rotated in the store), f32, one
//! long batch (the tiled kernel) and one short one (the subgroup kernel and the pass).
//! The kernel-level tests are in tests/matmul.rs and tests/matmul_coop.rs.

mod common;

use wgbert::encoder::Encoder;
use wgbert::ops::DType;
use wgbert::ops::matmul::tiled;
use wgbert::ops::tune::{self, RowClass};

/// Hidden 128 in 2 heads of 64, GeGLU 192, 2 layers (global, local), window 32 each side.
const MODEL: common::TinyModel = common::TinyModel {
    vocab: 300,
    hidden: 128,
    intermediate: 192,
    layers: 2,
    heads: 2,
    global_every: 2,
    window: 64,
};

/// Hidden states of `batches` with the tiled matmul pinned to `config` (a fresh encoder, so
/// its plans are recorded with it), and the plan listing of the long batch.
fn run(config: tiled::Config, batches: &[Vec<Vec<u32>>]) -> (Vec<Vec<Vec<Vec<f32>>>>, String) {
    let gpu = common::gpu();
    for class in RowClass::ALL {
        tune::pin_tiled(&gpu, class, DType::F32, config);
    }
    let cfg = common::random_config(&MODEL);
    let enc = Encoder::random(gpu.clone(), cfg, Some(DType::F32), Some(1024)).unwrap();
    let out = batches
        .iter()
        .map(|b| enc.hidden_states(b).unwrap())
        .collect();
    (out, enc.describe_plan(1000).unwrap())
}

#[test]
fn fused_rope_gives_the_separate_pass_results() {
    let seq = |len: u64, salt: u64| -> Vec<u32> {
        (0..len)
            .map(|i| 3 + (((i + salt) * 2_654_435_761) >> 9) as u32 % 290)
            .collect()
    };
    let batches = vec![vec![seq(700, 1), seq(20, 2), seq(280, 3)], vec![seq(20, 4)]];
    let narrow = tiled::Config { rm: 4, rn: 2 };
    let (want, plan) = run(narrow, &batches);
    assert!(
        plan.contains("rope/main") && !plan.contains("ROPE="),
        "{plan}"
    );
    let (got, plan) = run(tiled::DEFAULT, &batches);
    assert!(plan.contains("RN=4,ROPE="), "{plan}");
    for (b, (g, w)) in got.iter().zip(&want).enumerate() {
        for (s, (gs, ws)) in g.iter().zip(w).enumerate() {
            let g: Vec<f32> = gs.concat();
            let w: Vec<f64> = ws.concat().iter().map(|&x| x as f64).collect();
            common::assert_close(&format!("batch {b} sequence {s}"), &g, &w, 2e-5, 2e-5);
        }
    }
}
