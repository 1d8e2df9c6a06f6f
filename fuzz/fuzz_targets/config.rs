//! `ModelConfig::from_json_str` on arbitrary text: never panics, and a config it accepts
//! satisfies the invariants the rest of the engine relies on.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wgbert::model::config::{MAX_HIDDEN, MAX_INTERMEDIATE, MAX_LAYERS, MAX_VOCAB, ModelConfig};
use wgbert::model::weights::{Heads, expected_tensors, param_count};

fuzz_target!(|data: &[u8]| {
    // Lossy so that invalid UTF-8 still reaches the JSON parser (as `from_file` would refuse
    // it earlier, this only widens what the parser sees).
    let text = String::from_utf8_lossy(data);
    let Ok(cfg) = ModelConfig::from_json_str(&text, "fuzz/config.json") else {
        return;
    };
    assert!(cfg.vocab_size >= 1 && cfg.vocab_size <= MAX_VOCAB);
    assert!(cfg.hidden_size >= 1 && cfg.hidden_size <= MAX_HIDDEN);
    assert!(cfg.intermediate_size >= 1 && cfg.intermediate_size <= MAX_INTERMEDIATE);
    assert!(cfg.num_hidden_layers >= 1 && cfg.num_hidden_layers <= MAX_LAYERS);
    assert!(cfg.num_attention_heads >= 1);
    assert_eq!(cfg.head_dim * cfg.num_attention_heads, cfg.hidden_size);
    assert_eq!(cfg.head_dim % 2, 0);
    assert_eq!(cfg.layers.len(), cfg.num_hidden_layers);
    assert!(cfg.max_position_embeddings >= 1 && cfg.local_attention >= 1);
    assert!(cfg.norm_eps.is_finite() && cfg.norm_eps > 0.0);
    for layer in 0..cfg.num_hidden_layers {
        let theta = cfg.rope_theta(layer);
        assert!(theta.is_finite() && theta > 1.0);
        let _ = cfg.layer_kind(layer);
    }
    for id in [
        cfg.pad_token_id,
        cfg.cls_token_id,
        cfg.sep_token_id,
        cfg.mask_token_id,
        cfg.unk_token_id,
    ]
    .into_iter()
    .flatten()
    {
        assert!((id as usize) < cfg.vocab_size);
    }
    let _ = cfg.window_half();
    // What a later load derives from the config must not panic either (no overflow).
    let labels = cfg.num_labels().max(1);
    for heads in [Heads::NONE, Heads::MLM, Heads::classifier(labels)] {
        if cfg.num_hidden_layers <= 64 {
            let tensors = expected_tensors(&cfg, heads);
            assert!(!tensors.is_empty());
        }
        let _ = param_count(&cfg, heads);
    }
});
