//! RoPE fused into the Wqkv projection (`matmul::record_rope`) against the separate pass, at
//! the model level: the same random ModernBERT (heads of 64) with the tiled matmul pinned to
//! 32-column tiles (narrower than a head: the projection stores plain values and the rope
//! pass rotates them) and to 64-column tiles (whole heads: rotated in the store), f32, one
//! long batch (the tiled kernel) and one short one (the subgroup kernel and the pass); and two
//! encoders with different pinned tiles side by side on one device.
//! The kernel-level tests are in tests/matmul.rs and tests/matmul_coop.rs.

mod common;

use wgbert::encoder::Encoder;
use wgbert::ops::DType;
use wgbert::ops::choice::RowClass;
use wgbert::ops::matmul::tiled;

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

/// A fresh encoder with the tiled matmul pinned to `config` (on its own choices: other
/// encoders on the device keep theirs).
fn encoder(config: tiled::Config) -> Encoder {
    let cfg = common::random_config(&MODEL);
    let mut enc = Encoder::random(common::gpu(), cfg, Some(DType::F32), Some(1024)).unwrap();
    let mut choices = enc.choices().clone();
    for class in RowClass::ALL {
        choices.set_tiled(class, DType::F32, config);
    }
    enc.set_choices(choices).unwrap();
    enc
}

/// Hidden states of `batches` with the tiled matmul pinned to `config`, and the plan listing
/// of the long batch.
fn run(config: tiled::Config, batches: &[Vec<Vec<u32>>]) -> (Vec<Vec<Vec<Vec<f32>>>>, String) {
    let enc = encoder(config);
    let out = batches
        .iter()
        .map(|b| enc.hidden_states(b).unwrap())
        .collect();
    (out, enc.describe_plan(1000).unwrap())
}

fn seq(len: u64, salt: u64) -> Vec<u32> {
    (0..len)
        .map(|i| 3 + (((i + salt) * 2_654_435_761) >> 9) as u32 % 290)
        .collect()
}

/// Asserts that two runs' hidden states agree (f32, 2e-5).
fn assert_same(got: &[Vec<Vec<Vec<f32>>>], want: &[Vec<Vec<Vec<f32>>>]) {
    for (b, (g, w)) in got.iter().zip(want).enumerate() {
        for (s, (gs, ws)) in g.iter().zip(w).enumerate() {
            let g: Vec<f32> = gs.concat();
            let w: Vec<f64> = ws.concat().iter().map(|&x| x as f64).collect();
            common::assert_close(&format!("batch {b} sequence {s}"), &g, &w, 2e-5, 2e-5);
        }
    }
}

#[test]
fn fused_rope_gives_the_separate_pass_results() {
    let batches = vec![vec![seq(700, 1), seq(20, 2), seq(280, 3)], vec![seq(20, 4)]];
    let narrow = tiled::Config { rm: 4, rn: 2 };
    let (want, plan) = run(narrow, &batches);
    assert!(
        plan.contains("rope/main") && !plan.contains("ROPE="),
        "{plan}"
    );
    let (got, plan) = run(tiled::DEFAULT, &batches);
    assert!(plan.contains("RN=4,ROPE="), "{plan}");
    assert_same(&got, &want);
}

/// Two encoders on one device, each with its own pinned tiles, used side by side in one
/// process: each records and runs its own kernels (narrow tiles with the separate RoPE pass,
/// the default ones with RoPE fused), and both give the same hidden states.
#[test]
fn two_encoders_on_one_device_keep_their_own_tiles() {
    let narrow = encoder(tiled::Config { rm: 4, rn: 2 });
    let wide = encoder(tiled::Config { rm: 8, rn: 4 });
    assert!(std::sync::Arc::ptr_eq(narrow.gpu(), wide.gpu()));
    let batches = [vec![seq(600, 5), seq(40, 6)], vec![seq(900, 7)]];
    let (mut a, mut b) = (Vec::new(), Vec::new());
    // Interleaved: each call records (on first use) and runs with its own encoder's choices.
    for batch in &batches {
        a.push(narrow.hidden_states(batch).unwrap());
        b.push(wide.hidden_states(batch).unwrap());
    }
    let (pa, pb) = (
        narrow.describe_plan(1000).unwrap(),
        wide.describe_plan(1000).unwrap(),
    );
    assert!(pa.contains("RM=4,RN=2") && pa.contains("rope/main"), "{pa}");
    assert!(!pa.contains("RM=8,RN=4"), "{pa}");
    assert!(pb.contains("RM=8,RN=4,ROPE="), "{pb}");
    assert!(!pb.contains("RM=4,RN=2"), "{pb}");
    assert_same(&b, &a);
    // A third encoder at the default tiles, made after both, agrees too: neither pinned
    // encoder changed what the device's next encoder records.
    let plain = Encoder::random(
        common::gpu(),
        common::random_config(&MODEL),
        Some(DType::F32),
        Some(1024),
    )
    .unwrap();
    let pc = plain.describe_plan(1000).unwrap();
    assert!(pc.contains("RM=4,RN=4,ROPE="), "{pc}");
    let c: Vec<_> = batches
        .iter()
        .map(|x| plain.hidden_states(x).unwrap())
        .collect();
    assert_same(&c, &a);
}
