//! On the word-level tokenizer of `tokenizer.rs`'s tests: [CLS]=1 [SEP]=2, hello=5,
//! world=6, a=7, b=8, c=9.

use super::*;
use crate::text::tokenizer::tests::tiny;

const L: Option<TruncationSide> = Some(TruncationSide::Left);
const R: Option<TruncationSide> = Some(TruncationSide::Right);

/// `n` words cycling a, b, c.
fn words(n: usize) -> String {
    let w = ["a", "b", "c"];
    (0..n).map(|i| w[i % 3]).collect::<Vec<_>>().join(" ")
}

fn ids(n: usize, from: usize) -> Vec<u32> {
    (from..from + n).map(|i| 7 + (i % 3) as u32).collect()
}

fn framed(mid: Vec<u32>) -> Vec<u32> {
    [vec![1], mid, vec![2]].concat()
}

#[test]
fn long_texts_read_in_parts_keep_the_whole_texts_tokens() -> Result<()> {
    let tok = tiny().with_limit(Some(10), true)?;
    for n in [3, 8, 9, 200, 5000, 40_000] {
        let text = words(n);
        let right = tok.encode_prompted(None, &text, R, 0)?.ids;
        assert_eq!(right, framed(ids(n.min(8), 0)), "right, {n} words");
        let left = tok.encode_prompted(None, &text, L, 0)?.ids;
        assert_eq!(
            left,
            framed(ids(n.min(8), n.saturating_sub(8))),
            "left, {n} words"
        );
    }
    Ok(())
}

#[test]
fn a_prompt_stays_whole_and_only_the_text_is_cut() -> Result<()> {
    let tok = tiny().with_limit(Some(10), true)?;
    for n in [20, 5000] {
        let text = words(n);
        let left = tok.encode_prompted(Some("hello world "), &text, L, 0)?.ids;
        let tail = ids(6, n - 6);
        assert_eq!(left, framed([vec![5, 6], tail].concat()), "{n} words");
        let right = tok.encode_prompted(Some("hello world "), &text, R, 0)?.ids;
        assert_eq!(right, framed([vec![5, 6], ids(6, 0)].concat()), "{n} words");
    }
    // Within the limit the prompt and text are the tokenizer's own.
    let short = tok.encode_prompted(Some("hello "), "a b", L, 0)?.ids;
    assert_eq!(short, [1, 5, 7, 8, 2]);
    // A prompt that fills the limit leaves nothing to keep from the left.
    let long_prompt = format!("{} ", words(9));
    let e = tok.encode_prompted(Some(&long_prompt), &words(30), L, 0);
    assert!(matches!(e, Err(Error::Input { .. })), "{e:?}");
    Ok(())
}

#[test]
fn over_the_limit_without_truncation_is_refused() -> Result<()> {
    let tok = tiny().with_limit(Some(10), false)?;
    for n in [9, 500] {
        let e = tok.encode_prompted(None, &words(n), None, 3).unwrap_err();
        let Error::Input { index, message } = e else {
            panic!("{e:?}")
        };
        assert_eq!(index, 3);
        assert!(
            message.contains("over the model's limit of 10"),
            "{message}"
        );
    }
    assert_eq!(
        tok.encode_prompted(None, &words(8), None, 0)?.ids,
        framed(ids(8, 0))
    );
    // Past CHARS_PER_TOKEN characters per token of the limit: refused unread.
    let huge = "a".repeat(10 * CHARS_PER_TOKEN + 1);
    let e = tok.encode_prompted(None, &huge, None, 0).unwrap_err();
    assert!(e.to_string().contains("characters"), "{e}");
    Ok(())
}

#[test]
fn pairs_lose_tokens_from_the_longer_side() -> Result<()> {
    let tok = tiny().with_limit(Some(8), true)?;
    let p = tok.encode_pair_cut("a b c a b c", "hello", R, 0)?.ids;
    assert_eq!(p, [1, 7, 8, 9, 7, 2, 5, 2]);
    let p = tok.encode_pair_cut("a b c a b c", "hello", L, 0)?.ids;
    assert_eq!(p, [1, 9, 7, 8, 9, 2, 5, 2]);
    assert!(
        tok.encode_pair_cut("a b c a b c", "hello", None, 0)
            .is_err()
    );
    Ok(())
}

#[test]
fn word_boundaries() {
    assert_eq!(word_end("aa bb cc", 7), Some(5));
    assert_eq!(word_end("aaaaaaaa", 7), None);
    assert_eq!(word_start("aa bb cc", 4), Some(5));
    assert_eq!(word_start("aa  bb", 6), Some(3));
}
