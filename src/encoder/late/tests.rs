use super::*;

/// `[CLS] p p w0 w1 ... [SEP]`: a 3-character prompt of two tokens, then `words` one-letter
/// words ("a b c ...", each token's first character at 2 * i in the document).
fn places(words: usize) -> TokenPlaces {
    let mut ids = vec![1, 90, 91];
    let mut chars = vec![(0, 0), (0, 1), (2, 3)];
    for w in 0..words {
        ids.push(100 + w as u32);
        chars.push((3 + 2 * w, 4 + 2 * w));
    }
    ids.push(2);
    chars.push((0, 0));
    let special = ids.iter().map(|&i| i < 3).collect();
    TokenPlaces {
        ids,
        chars,
        special,
    }
}

fn doc(words: usize) -> Document {
    Document::new(&places(words), 3, 2 * words)
}

#[test]
fn tokens_join_the_chunk_that_holds_their_first_character() {
    let d = doc(5);
    assert_eq!((d.head, d.tail), (3, 1));
    let text = "a b c d e ";
    let spans = Chunking::Spans(vec![(0, 3), (3, 10), (1, 5)]);
    let got = d.chunks(text, &spans, 0).unwrap();
    // Words start at 0, 2, 4, 6, 8; tokens 3..8 of the sequence.
    assert_eq!(got[0], ((0, 3), vec![3, 4]));
    assert_eq!(got[1], ((3, 10), vec![5, 6, 7]));
    assert_eq!(
        got[2],
        ((1, 5), vec![4, 5]),
        "overlapping spans share tokens"
    );
    let e = d
        .chunks(text, &Chunking::Spans(vec![(1, 2)]), 4)
        .unwrap_err();
    assert!(
        e.to_string().contains("input 4") && e.to_string().contains("no token"),
        "{e}"
    );
    for bad in [(3, 3), (5, 11)] {
        let e = d.chunks(text, &Chunking::Spans(vec![bad]), 0).unwrap_err();
        assert!(e.to_string().contains("not a span"), "{e}");
    }
}

#[test]
fn separators_and_token_budgets_cover_the_text() {
    let d = doc(5);
    let text = "a b|c d|e ";
    let got = d.chunks(text, &Chunking::Separator("|".into()), 0).unwrap();
    let spans: Vec<_> = got.iter().map(|c| c.0).collect();
    assert_eq!(spans, [(0, 4), (4, 8), (8, 10)]);
    assert_eq!(got[1].1, [5, 6]);
    // A piece without a token is left out.
    let got = d
        .chunks("a b c d e||", &Chunking::Separator("|".into()), 0)
        .unwrap();
    assert_eq!(got.len(), 1);
    assert!(
        d.chunks(text, &Chunking::Separator(String::new()), 0)
            .is_err()
    );
    let got = d.chunks(text, &Chunking::Tokens(2), 0).unwrap();
    let spans: Vec<_> = got.iter().map(|c| c.0).collect();
    assert_eq!(spans, [(0, 4), (4, 8), (8, 10)]);
    assert_eq!(got[2].1, [7]);
    assert!(d.chunks(text, &Chunking::Tokens(0), 0).is_err());
}

#[test]
fn long_documents_run_in_overlapping_windows() {
    let p = places(10);
    let d = doc(10);
    // Within the limit: one window, the sequence itself.
    let (w, owner) = d.windows(&p.ids, 14, None, 0).unwrap();
    assert_eq!(w, std::slice::from_ref(&p.ids));
    assert_eq!(owner[5], (0, 5));
    // A limit of 8 leaves 4 document tokens per window; overlap 2, stride 2.
    let (w, owner) = d.windows(&p.ids, 8, Some(2), 0).unwrap();
    let body = |w: &Vec<u32>| w[3..w.len() - 1].to_vec();
    assert_eq!(w.len(), 4);
    assert_eq!(body(&w[0]), [100, 101, 102, 103]);
    assert_eq!(body(&w[3]), [106, 107, 108, 109]);
    for win in &w {
        assert_eq!(&win[..3], &[1, 90, 91]);
        assert_eq!(win[win.len() - 1], 2);
    }
    // Shared tokens: the first half of each shared pair stays with the earlier window.
    let from: Vec<usize> = owner[3..13].iter().map(|o| o.0).collect();
    assert_eq!(from, [0, 0, 0, 1, 1, 2, 2, 3, 3, 3]);
    for (i, &(k, pos)) in owner.iter().enumerate().take(13).skip(3) {
        assert_eq!(w[k][pos], p.ids[i], "token {i}");
    }
    // The default overlap is at most half a window; too large an overlap is refused.
    let (w, _) = d.windows(&p.ids, 8, None, 0).unwrap();
    assert_eq!(w.len(), 4);
    assert!(d.windows(&p.ids, 8, Some(4), 0).is_err());
    assert!(
        d.windows(&p.ids, 4, None, 0).is_err(),
        "no room after the prompt"
    );
}

#[test]
fn a_token_across_the_prompt_end_is_the_documents() {
    // "q: " + "ab cd": [CLS] "q" ":" " ab" " cd" [SEP], the space of " ab" the prompt's.
    let p = TokenPlaces {
        ids: vec![1, 10, 11, 12, 13, 2],
        chars: vec![(0, 0), (0, 1), (1, 2), (2, 5), (5, 8), (0, 0)],
        special: vec![true, false, false, false, false, true],
    };
    let d = Document::new(&p, 3, 5);
    assert_eq!(d.head, 3);
    assert_eq!(d.starts[3], Some(0));
    assert_eq!(d.starts[4], Some(2));
    let got = d
        .chunks("ab cd", &Chunking::Spans(vec![(0, 2)]), 0)
        .unwrap();
    assert_eq!(got[0].1, [3]);
}
