//! The encoder recovers from a panic that poisoned its lock (a bug inside a batch): the next
//! calls rebuild its plans and give the same results as before.

use std::path::PathBuf;

use super::{EmbedPooling, Encoder, LoadOptions};
use crate::ops::DType;
use crate::runtime::{Gpu, GpuOptions};

#[test]
fn a_poisoned_lock_is_recovered_and_results_stay_the_same() {
    let gpu = match Gpu::new(&GpuOptions::default()) {
        Ok(g) => g,
        Err(e) => panic!("tests need a GPU adapter (install mesa-vulkan-drivers): {e}"),
    };
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mlm_v4");
    let opts = LoadOptions {
        dtype: Some(DType::F32),
        ..Default::default()
    };
    let enc = Encoder::load_on(gpu, dir.to_str().unwrap(), &opts).expect("the fixture loads");
    let seqs = vec![vec![1u32, 5, 6, 7, 2], vec![1, 9, 2]];
    let before = enc.embed_ids(&seqs, EmbedPooling::Mean, false).unwrap();
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _held = enc.buckets.lock();
        panic!("a bug while the buckets are held");
    }));
    assert!(panicked.is_err());
    assert!(enc.buckets.is_poisoned());
    let after = enc.embed_ids(&seqs, EmbedPooling::Mean, false).unwrap();
    assert!(!enc.buckets.is_poisoned());
    for (a, b) in before.iter().zip(&after) {
        assert_eq!(a.vectors, b.vectors, "the same vectors after recovery");
    }
    assert_eq!(before.len(), after.len());
}
