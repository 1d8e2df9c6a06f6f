//! The small config the `weights` target validates checkpoints against, chosen by 8 flag
//! bits. Shared with tests/fuzz_regressions.rs (which includes this file), so a replayed crash
//! meets the same config as the fuzzer did.

use wgbert::model::config::ModelConfig;

/// vocab 4, hidden 2, one head; bit 7: 2 layers instead of 1; bits 0-5: attention, MLP,
/// norm, classifier and decoder biases, and tied word embeddings; bit 6: two labels.
pub fn tiny_config(flags: u8) -> wgbert::Result<ModelConfig> {
    let b = |bit: u8| flags & (1 << bit) != 0;
    let labels = if b(6) {
        r#""id2label": {"0": "neg", "1": "pos"},"#
    } else {
        ""
    };
    let text = format!(
        r#"{{"model_type": "modernbert", "vocab_size": 4, "hidden_size": 2,
            "intermediate_size": 2, "num_hidden_layers": {}, "num_attention_heads": 1,
            "attention_bias": {}, "mlp_bias": {}, "norm_bias": {}, "classifier_bias": {},
            "decoder_bias": {}, {labels} "tie_word_embeddings": {}}}"#,
        1 + usize::from(b(7)),
        b(0),
        b(1),
        b(2),
        b(3),
        b(4),
        b(5),
    );
    ModelConfig::from_json_str(&text, "fuzz/config.json")
}
