//! The request visitors: shapes, counting, deep and wide bodies.
use super::*;

fn embed(json: &str, max: usize) -> Result<EmbedInputs, ApiError> {
    parse::<EmbedInputs>(json.as_bytes(), max)
}

#[test]
fn embed_inputs_take_texts_ids_and_batches() {
    let one = embed(r#""a b""#, 2).unwrap().0;
    assert!(one.single);
    assert_eq!(one.items, [Input::Text("a b".into())]);
    let ids = embed("[1, 5, 2]", 2).unwrap().0;
    assert!(ids.single);
    assert_eq!(ids.items, [Input::Ids(vec![1, 5, 2])]);
    let batch = embed(r#"["a", [1, 2]]"#, 2).unwrap().0;
    assert!(!batch.single);
    assert_eq!(
        batch.items,
        [Input::Text("a".into()), Input::Ids(vec![1, 2])]
    );
    assert!(embed("[]", 2).unwrap().0.items.is_empty());
    let e = embed(r#"["a", 3]"#, 2).unwrap_err();
    assert_eq!(e.status, 422, "{e:?}");
    let e = embed(r#"[1, "a"]"#, 2).unwrap_err();
    assert_eq!(e.status, 422, "{e:?}");
    let e = embed("[-1]", 2).unwrap_err();
    assert_eq!(e.status, 422, "{e:?}");
    assert_eq!(embed("[1, ", 2).unwrap_err().status, 400);
}

#[test]
fn counting_stops_at_the_first_input_past_the_limit() {
    let e = embed(r#"["a", "b", "c""#, 2).unwrap_err();
    // The parse stopped at "c": the body's missing end was never reached.
    assert_eq!(e.status, 422, "{e:?}");
    assert!(e.message.contains("maximum allowed batch size 2"), "{e:?}");
    assert_eq!(embed(r#"["a", "b"]"#, 2).unwrap().0.items.len(), 2);
    // Token ids of one input are not inputs.
    assert_eq!(embed("[1, 2, 3, 4]", 2).unwrap().0.items.len(), 1);
    let p = parse::<PredictInputs>(br#"[["a"], ["b", "c"], ["d"]]"#, 2).unwrap_err();
    assert!(p.message.contains("batch size"), "{p:?}");
}

#[test]
fn predict_inputs_read_pairs_as_tei_does() {
    let p = |j: &str| parse::<PredictInputs>(j.as_bytes(), 32).map(|p| p.0);
    let pair = p(r#"["q", "d"]"#).unwrap();
    assert!(pair.single);
    assert_eq!(pair.items, [Input::Pair("q".into(), "d".into())]);
    let one = p(r#"["q"]"#).unwrap();
    assert_eq!(one.items, [Input::Text("q".into())]);
    let batch = p(r#"[["q", "d"], ["x"]]"#).unwrap();
    assert!(!batch.single);
    assert_eq!(
        batch.items,
        [Input::Pair("q".into(), "d".into()), Input::Text("x".into())]
    );
    assert_eq!(p(r#"["a", "b", "c"]"#).unwrap_err().status, 422);
    assert_eq!(p(r#"[["a", "b", "c"]]"#).unwrap_err().status, 422);
    assert_eq!(p(r#"[[]]"#).unwrap_err().status, 422);
}

#[test]
fn deep_and_wide_bodies_are_refused_or_skipped() {
    #[derive(Deserialize, Debug)]
    struct R {
        #[allow(dead_code)]
        inputs: EmbedInputs,
    }
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let e = parse::<R>(format!("{{\"inputs\": {deep}}}").as_bytes(), 32).unwrap_err();
    assert!(e.status == 400 || e.status == 422, "{e:?}");
    let wide = format!(
        "{{\"inputs\": \"a\", \"junk\": [{}0]}}",
        "0,".repeat(200_000)
    );
    assert!(parse::<R>(wide.as_bytes(), 32).is_ok());
}

#[test]
fn root_inputs_are_embed_or_similarity() {
    let r = parse::<RootInputs>(br#"{"source_sentence": "a", "sentences": ["b"]}"#, 4);
    assert!(matches!(r, Ok(RootInputs::Similarity(_))));
    let r = parse::<RootInputs>(br#"["a"]"#, 4);
    assert!(matches!(r, Ok(RootInputs::Embed(_))));
    let ids = parse::<IdsInputs>(b"[[1], [2, 3]]", 4).unwrap().0;
    assert_eq!(ids.items, [vec![1], vec![2, 3]]);
    assert!(parse::<IdsInputs>(b"[1, 2]", 4).unwrap().0.single);
}

#[test]
fn embed_docs_read_objects_with_spans_counted() {
    let d = |j: &str, max: usize| parse::<EmbedDocs>(j.as_bytes(), max);
    let batch = d(
        r#"[{"text": "a b", "chunks": [[0, 1], [2, 3]]}, "c", {"text": "d"}]"#,
        3,
    )
    .unwrap();
    assert!(batch.objects && !batch.inputs.0.single);
    let texts = ["a b", "c", "d"].map(|t| Input::Text(t.into()));
    assert_eq!(batch.inputs.0.items, texts);
    assert_eq!(batch.chunks, [Some(vec![(0, 1), (2, 3)]), None, None]);
    let one = d(r#"{"text": "a", "chunks": [[0, 1]]}"#, 1).unwrap();
    assert!(one.objects && one.inputs.0.single);
    let plain = d(r#"["a", [1, 2]]"#, 2).unwrap();
    assert!(!plain.objects);
    assert_eq!(plain.chunks, [None, None]);
    // Objects count as inputs; a span is a pair; no other field.
    let e = d(r#"[{"text": "a"}, {"text": "b"}, {"text": "c"}"#, 2).unwrap_err();
    assert!(e.message.contains("maximum allowed batch size 2"), "{e:?}");
    for bad in [
        r#"[{"text": "a", "chunks": [[0]]}]"#,
        r#"[{"text": "a", "chunks": [[0, -1]]}]"#,
        r#"[{"chunks": [[0, 1]]}]"#,
        r#"[{"text": "a", "spans": [[0, 1]]}]"#,
    ] {
        assert_eq!(d(bad, 4).unwrap_err().status, 422, "{bad}");
    }
    // The other routes' inputs take no objects.
    let e = embed(r#"["a", {"text": "b"}]"#, 2).unwrap_err();
    assert!(e.message.contains("only /embed"), "{e:?}");
}
