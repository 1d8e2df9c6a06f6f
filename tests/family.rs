//! The ModernBERT family's quirks against transformers, on checkpoints and tokenizers written by
//! `scripts/make_family_fixtures.py` (README's table of relatives says which fixture stands
//! for which model):
//! - tokenizers of each kind the family ships, built with the `tokenizers` library: ModernBERT's
//!   byte-level BPE (`family_bytebpe`, with Ettin's vocabulary past the tokenizer, 7999
//!   positions and equal thetas) and Gemma's SentencePiece BPE with byte fallback
//!   (`family_gemma`, mmBERT's; `family_swiglu`, Granite multilingual R2's, with SwiGLU and
//!   32768 positions): every text's ids equal transformers' tokenizer's, every token's hidden
//!   state matches (f32 to 1e-4; f16 by cosine >= 0.999), and fill-mask at the mask token
//!   (`[MASK]`, `<mask>`) gives the reference's top 5 with its probabilities;
//! - every scaled `rope_type` transformers 5 accepts (`rope_linear`, `rope_dynamic`,
//!   `rope_yarn`, `rope_longrope`, `rope_llama3`, `rope_proportional`), with inputs up to 300
//!   tokens: hidden states as above. What cannot be matched is refused at load by name
//!   (`model::config::rope`'s tests).

mod common;

use common::model_dir::{expected as fixture, floats, uints};
use common::parity::{Top6, check_hidden_f16, check_hidden_f32, check_top5, inputs, load};
use wgbert::ops::DType;

const TOKENIZER_KINDS: [&str; 3] = ["family_bytebpe", "family_gemma", "family_swiglu"];
const ROPE_TYPES: [&str; 6] = [
    "rope_linear",
    "rope_dynamic",
    "rope_yarn",
    "rope_longrope",
    "rope_llama3",
    "rope_proportional",
];

#[test]
fn each_tokenizer_kind_gives_transformers_ids() {
    for name in TOKENIZER_KINDS {
        let (dir, exp) = fixture(name);
        let enc = load(&dir, DType::F32);
        let texts: Vec<String> = exp["texts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap().to_string())
            .collect();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let got = enc.tokenize(&refs).unwrap();
        let want = inputs(&exp);
        assert_eq!(got.len(), want.len(), "{name}: one id list per text");
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(g, w, "{name} text {i} {:?}", texts[i]);
        }
    }
}

#[test]
fn each_tokenizer_kind_matches_transformers_hidden_states() {
    for name in TOKENIZER_KINDS {
        check_hidden_f32(name);
    }
    // ModernBERT's kind in f16 is covered by tests/parity.rs; its table here (407 rows of
    // 64 bytes) fits the binding a forced WGBERT_MAX_BINDING run uses, which these loads
    // require to be split.
    check_hidden_f16("family_gemma");
}

/// Fill-mask with the tokenizer's own mask token (`[MASK]`, `<mask>`), from text: the
/// reference's top 5 at the mask, with its probabilities.
#[test]
fn fill_mask_finds_each_kind_of_mask_token() {
    for name in ["family_bytebpe", "family_gemma"] {
        let (dir, exp) = fixture(name);
        let enc = load(&dir, DType::F32);
        let mask = exp["mask_token"].as_str().unwrap();
        let want_mask = exp["special"]["mask"].as_u64().unwrap();
        let outs = exp["outputs"].as_array().unwrap();
        let seqs = inputs(&exp);
        let mut checked = 0;
        for (i, text) in exp["texts"].as_array().unwrap().iter().enumerate() {
            let text = text.as_str().unwrap();
            if !text.contains(mask) {
                continue;
            }
            let got = enc.fill_mask(&[text], 5).unwrap();
            let pos = seqs[i].iter().position(|&t| t as u64 == want_mask).unwrap();
            assert_eq!(got[0].len(), 1, "{name} text {i}: one mask");
            assert_eq!(
                got[0][0].position, pos,
                "{name} text {i}: the mask's position"
            );
            let want = Top6 {
                ids: uints(&outs[i]["mlm_top6"][pos]),
                logits: floats(&outs[i]["mlm_top6_logits"][pos]),
                lse: floats(&outs[i]["mlm_logsumexp"])[pos],
            };
            let cands: Vec<(u32, f32)> = got[0][0]
                .candidates
                .iter()
                .map(|c| (c.token_id, c.score))
                .collect();
            check_top5(&cands, &want).unwrap_or_else(|e| panic!("{name} text {i}: {e}"));
            checked += 1;
        }
        assert!(checked >= 4, "{name}: only {checked} texts with a mask");
    }
}

#[test]
fn every_scaled_rope_matches_transformers() {
    for name in ROPE_TYPES {
        check_hidden_f32(name);
    }
}

#[test]
fn every_scaled_rope_is_close_to_transformers_in_f16() {
    for name in ROPE_TYPES {
        check_hidden_f16(name);
    }
}

/// The fixtures are what they claim: each rope fixture's config names its type on both
/// layer kinds, with the keys the README's table lists.
#[test]
fn the_rope_fixtures_use_the_type_they_are_named_for() {
    for name in ROPE_TYPES {
        let (dir, _) = fixture(name);
        let text = std::fs::read_to_string(dir.join("config.json")).unwrap();
        let cfg: serde_json::Value = serde_json::from_str(&text).unwrap();
        let kind = name.trim_start_matches("rope_");
        let full = &cfg["rope_parameters"]["full_attention"]["rope_type"];
        assert_eq!(full, kind, "{name}");
        let parsed =
            wgbert::model::config::ModelConfig::from_json_str(&text, "config.json").unwrap();
        assert_eq!(parsed.global_rope_scaling.name(), kind, "{name}");
    }
}
