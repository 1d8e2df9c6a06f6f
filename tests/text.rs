//! Text handling and model sources: the tokenizer wrapper on the real ModernBERT tokenizer
//! (when `WGBERT_TOKENIZER` points at its tokenizer.json; the unit tests in src/text cover a
//! tiny tokenizer), packing properties, and (in `hub`) hub resolution from directories and a fake cache.

mod common;
#[path = "text/hub.rs"]
mod hub;

use anyhow::Result;
use proptest::prelude::*;
use wgbert::Error;
use wgbert::text::{PackedBatch, Splice, TextTokenizer, TruncationSide, pack};

// ---------------------------------------------------------------- tokenizer, real

fn input_err(e: Error) -> (usize, String) {
    match e {
        Error::Input { index, message } => (index, message),
        other => panic!("expected Error::Input, got {other:?}"),
    }
}

/// ModernBERT's tokenizer, where `WGBERT_TOKENIZER` names it (else `checks` are a skip).
fn real(checks: &str) -> Option<TextTokenizer> {
    if !common::require(common::Cap::Tokenizer, checks) {
        return None;
    }
    let path = std::env::var_os("WGBERT_TOKENIZER")?;
    Some(TextTokenizer::from_file(path).expect("WGBERT_TOKENIZER loads"))
}

#[test]
fn real_tokenizer_known_ids() -> Result<()> {
    let Some(tok) = real("ModernBERT's known ids, offsets and pairs") else {
        return Ok(());
    };
    let cases: [(&str, &[u32]); 4] = [
        ("Hello World!", &[50281, 12092, 3645, 2, 50282]),
        (
            "The capital of France is [MASK].",
            &[50281, 510, 5347, 273, 6181, 310, 50284, 15, 50282],
        ),
        ("hello     world", &[50281, 25521, 50273, 10186, 50282]),
        ("🤖 robot", &[50281, 14931, 99, 233, 15688, 50282]),
    ];
    for (text, ids) in cases {
        assert_eq!(tok.encode(text, 0)?.ids, ids, "{text:?}");
    }
    assert_eq!(tok.vocab_size(), 50368);
    assert_eq!(
        (tok.cls_id()?, tok.sep_id()?, tok.mask_id()?),
        (50281, 50282, 50284)
    );
    assert!(tok.pad_id().is_ok());
    let hello = tok.encode("Hello World!", 0)?;
    assert_eq!(hello.offsets, [(0, 0), (0, 5), (5, 11), (11, 12), (0, 0)]);
    assert_eq!(tok.decode(&hello.ids)?, "Hello World!");
    assert_eq!(tok.encode("", 0)?.ids, [50281, 50282]);
    let pair = tok.encode_pair("Hello World!", "Hello World!", 0)?;
    assert_eq!(
        pair.ids,
        [50281, 12092, 3645, 2, 50282, 12092, 3645, 2, 50282]
    );
    Ok(())
}

#[test]
fn real_tokenizer_limit() -> Result<()> {
    let Some(tok) = real("ModernBERT's tokenizer at its length limit") else {
        return Ok(());
    };
    let long = "word ".repeat(9000);
    let strict = tok.with_limit(Some(8192), false)?;
    let (index, message) = input_err(strict.encode(&long, 4).unwrap_err());
    assert_eq!(index, 4);
    assert!(
        message.contains("over the model's limit of 8192"),
        "{message}"
    );
    let cut = strict.with_limit(Some(8192), true)?;
    let e = cut.encode(&long, 0)?;
    assert_eq!(e.ids.len(), 8192);
    assert_eq!((e.ids[0], e.ids[8191]), (50281, 50282));
    Ok(())
}

/// Long texts read a part at a time keep the whole text's tokens, from either side and with
/// a prompt, on ModernBERT's byte-level tokenizer (spaces, punctuation, emoji, accents).
#[test]
fn real_tokenizer_reads_long_texts_in_parts() -> Result<()> {
    let Some(tok) = real("ModernBERT's tokenizer on long texts read in parts") else {
        return Ok(());
    };
    let whole = TextTokenizer::from_file(std::env::var_os("WGBERT_TOKENIZER").unwrap())?;
    let tok = tok.with_limit(Some(64), true)?;
    let pieces = [
        "The café's 🤖 robot",
        "ran,",
        "  quickly",
        "to Paris!",
        "naïve",
        "x\ty",
    ];
    let long: String = (0..4000)
        .map(|i| pieces[i % pieces.len()])
        .collect::<Vec<_>>()
        .join(" ");
    let all = whole
        .encode_prompted(Some("search_query: "), &long, None, 0)?
        .ids;
    let content = &all[1..all.len() - 1];
    let right = tok.encode_prompted(
        Some("search_query: "),
        &long,
        Some(TruncationSide::Right),
        0,
    )?;
    assert_eq!(right.ids[1..63], content[..62], "right");
    let bare = whole.encode_prompted(None, &long, None, 0)?.ids;
    let left = tok.encode_prompted(None, &long, Some(TruncationSide::Left), 0)?;
    assert_eq!(
        left.ids[1..63],
        bare[bare.len() - 63..bare.len() - 1],
        "left"
    );
    let prompted =
        tok.encode_prompted(Some("search_query: "), &long, Some(TruncationSide::Left), 0)?;
    // The prompt's own tokens (as it tokenizes alone), then the text's end.
    let own = whole.encode_prompted(None, "search_query: ", None, 0)?.ids;
    let prompt_tokens = own.len() - 2;
    assert_eq!(
        prompted.ids[1..1 + prompt_tokens],
        own[1..own.len() - 1],
        "the prompt"
    );
    let kept = 62 - prompt_tokens;
    assert_eq!(
        prompted.ids[1 + prompt_tokens..63],
        bare[bare.len() - 1 - kept..bare.len() - 1],
        "the text's end"
    );
    Ok(())
}

/// Fill-mask's filled-in sequences, spliced from the text decoded once, equal the
/// tokenizer's decoding of every filled sequence, for thousands of candidates (partial
/// characters and special tokens among them).
#[test]
fn real_tokenizer_fill_mask_sequences_splice_exactly() -> Result<()> {
    let Some(tok) = real("fill-mask sequences on ModernBERT's tokenizer") else {
        return Ok(());
    };
    let text = "The café's 🤖 said [MASK] to Paris,[MASK] and then  [MASK]!";
    let seq = tok.encode(text, 0)?.ids;
    let mask = tok.mask_id()?;
    let positions: Vec<usize> = (0..seq.len()).filter(|&p| seq[p] == mask).collect();
    assert_eq!(positions.len(), 3);
    let splice = Splice::new(&tok, &seq, &positions)?;
    for &p in &positions {
        for id in (0..50368u32).step_by(13).chain([99, 233, 50281, 50284]) {
            let token = tok.decode(&[id])?;
            let got = splice.filled(&tok, &seq, p, id, &token)?;
            let mut filled = seq.clone();
            filled[p] = id;
            assert_eq!(got, tok.decode(&filled)?, "mask at {p}, candidate {id}");
        }
    }
    Ok(())
}

fn check_batches(seqs: &[Vec<u32>], batches: &[PackedBatch], cap: usize, max_seqs: usize) {
    let mut seen = Vec::new();
    for b in batches {
        assert!(b.n_seqs() >= 1 && b.n_seqs() <= max_seqs);
        assert!(b.n_tokens() <= cap);
        assert_eq!(b.cu_seqlens.len(), b.n_seqs() + 1);
        assert_eq!(b.cu_seqlens[0], 0);
        assert_eq!(*b.cu_seqlens.last().unwrap() as usize, b.n_tokens());
        assert_eq!(b.positions.len(), b.n_tokens());
        let mut max = 0;
        for (i, &index) in b.indices.iter().enumerate() {
            let r = b.seq_range(i);
            assert!(!r.is_empty());
            assert_eq!(&b.ids[r.clone()], seqs[index].as_slice());
            let pos: Vec<u32> = (0..r.len() as u32).collect();
            assert_eq!(b.positions[r.clone()], pos[..], "positions restart at 0");
            max = max.max(r.len() as u32);
            seen.push(index);
        }
        assert_eq!(b.max_seqlen, max);
    }
    let all: Vec<usize> = (0..seqs.len()).collect();
    assert_eq!(seen, all, "each sequence exactly once, in input order");
}

proptest! {
    #[test]
    fn pack_properties(
        seqs in prop::collection::vec(prop::collection::vec(any::<u32>(), 1..40), 0..60),
        cap in 40usize..200,
        max_seqs in 1usize..10,
    ) {
        let batches = pack(&seqs, cap, max_seqs).unwrap();
        check_batches(&seqs, &batches, cap, max_seqs);
        // Greedy: a batch closed only because the next sequence did not fit.
        for w in batches.windows(2) {
            let first_next = seqs[w[1].indices[0]].len();
            prop_assert!(
                w[0].n_seqs() == max_seqs || w[0].n_tokens() + first_next > cap
            );
        }
    }
}
