"""encode / rank / predict / encode_multi against sentence-transformers, CrossEncoder and
PyLate outputs stored with the fixtures (scripts/make_st_fixtures.py): f32 within 1e-4;
rankings equal wherever the reference scores differ by more than 1e-4."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import TOL, assert_close, expected, load


def check_ranking(what, ranked, want, docs=None):
    assert len(ranked) == len(want), f"{what}: ranked count"
    assert sorted(r["corpus_id"] for r in ranked) == list(range(len(want))), what
    for r in ranked:
        w = want[r["corpus_id"]]
        assert abs(r["score"] - w) <= TOL, f"{what}: doc {r['corpus_id']} {r['score']} want {w}"
        if docs is not None:
            assert r["text"] == docs[r["corpus_id"]]
    for a, b in zip(ranked, ranked[1:]):
        wa, wb = want[a["corpus_id"]], want[b["corpus_id"]]
        assert wa >= wb - TOL, f"{what}: doc {a['corpus_id']} above {b['corpus_id']}"


@pytest.mark.parametrize("name", ["st_mean_dense", "st_cls_oldkeys", "st_mean_noprompt"])
def test_bi_encoders_match_sentence_transformers(name):
    d, exp = expected(name)
    enc = load(d)
    assert enc.info["kind"] == "embedder"
    texts = exp["texts"]
    for c, case in enumerate(exp["cases"]):
        got = enc.encode(
            texts,
            prompt_name=case["prompt_name"],
            prompt=case["prompt"],
            truncate_dim=case["truncate_dim"],
            normalize_embeddings=case.get("normalize_embeddings"),
        )
        assert isinstance(got, np.ndarray) and got.dtype == np.float32
        assert_close(f"{name} case {c}", got, case["embeddings"])
        one = enc.encode(
            texts[0],
            prompt_name=case["prompt_name"],
            prompt=case["prompt"],
            truncate_dim=case["truncate_dim"],
            normalize_embeddings=case.get("normalize_embeddings"),
        )
        assert one.shape == (len(case["embeddings"][0]),), "one string gives [d]"
        assert_close(f"{name} case {c} single", one, case["embeddings"][0])
    rr = exp["rerank"]
    ranked = enc.rank(rr["query"], rr["documents"], return_documents=True)
    check_ranking(f"{name} rank", ranked, rr["scores"], rr["documents"])


def test_encode_query_and_document_use_the_models_prompts():
    d, exp = expected("st_mean_dense")
    enc = load(d)
    by = {(c["prompt_name"], c["prompt"], c["truncate_dim"]): c for c in exp["cases"]}
    texts = exp["texts"]
    assert_close("encode_query", enc.encode_query(texts), by[("query", None, None)]["embeddings"])
    assert_close(
        "encode_document", enc.encode_document(texts), by[("document", None, None)]["embeddings"]
    )
    # An explicit prompt wins over the role's.
    assert_close(
        "encode_query(prompt=...)",
        enc.encode_query(texts, prompt="rerank : "),
        by[(None, "rerank : ", None)]["embeddings"],
    )
    assert enc.get_sentence_embedding_dimension() == 16
    assert enc.prompts["query"] == "search_query : "


def test_token_embeddings_and_empty_input():
    d, exp = expected("st_mean_dense")
    enc = load(d)
    toks = enc.encode(exp["texts"][:2], output_value="token_embeddings")
    assert isinstance(toks, list) and len(toks) == 2
    # [CLS] the cat sat on the mat . [SEP]: 9 tokens of the encoder's 32 features.
    assert toks[0].shape == (9, enc.info["hidden_size"])
    assert toks[0].dtype == np.float32
    single = enc.encode("fish", output_value="token_embeddings")
    assert single.shape == (3, enc.info["hidden_size"])
    empty = enc.encode([])
    assert empty.shape == (0, 16)


def test_small_batches_give_the_same_vectors_and_draw_a_bar(capsys):
    d, exp = expected("st_mean_dense")
    enc = load(d)
    whole = enc.encode(exp["texts"])
    chunked = enc.encode(exp["texts"], batch_size=2, show_progress_bar=True)
    assert_close("batch_size=2", chunked, whole, 1e-5)
    err = capsys.readouterr().err
    assert "6/6" in err, err


def test_cross_encoder_matches_cross_encoder():
    d, exp = expected("cross_encoder")
    enc = load(d)
    assert enc.info["kind"] == "cross-encoder"
    docs, query = exp["documents"], exp["query"]
    ranked = enc.rank(query, docs)
    check_ranking("cross-encoder rank", ranked, exp["scores"])
    assert [r["corpus_id"] for r in ranked] == exp["rank"], "CrossEncoder.rank order"
    assert "text" not in ranked[0]
    top = enc.rank(query, docs, top_k=2, raw_scores=True, return_documents=True)
    assert len(top) == 2
    for r in top:
        assert abs(r["score"] - exp["raw_scores"][r["corpus_id"]]) <= TOL
        assert r["text"] == docs[r["corpus_id"]]
    scores = enc.predict([(query, doc) for doc in docs])
    assert scores.dtype == np.float32
    assert_close("CrossEncoder.predict", scores, exp["scores"])
    raw = enc.predict([(query, docs[0])], raw_scores=True)
    assert_close("raw predict", raw, exp["raw_scores"][:1])
    assert abs(enc.predict((query, docs[1])) - exp["scores"][1]) <= TOL


@pytest.mark.parametrize("name", ["colbert", "colbert_masked"])
def test_colbert_matches_pylate(name):
    d, exp = expected(name)
    enc = load(d)
    assert enc.info["kind"] == "colbert"
    for key, emb_key, is_query in [
        ("queries", "query_embeddings", True),
        ("documents", "document_embeddings", False),
    ]:
        got = enc.encode_multi(exp[key], is_query=is_query)
        want = exp[emb_key]
        assert len(got) == len(want)
        for i, (g, w) in enumerate(zip(got, want)):
            assert g.dtype == np.float32
            assert_close(f"{name} {key} {i}", g, w)
    one = enc.encode_multi(exp["queries"][0], is_query=True)
    assert_close(f"{name} single query", one, exp["query_embeddings"][0])
    rr = exp["rerank"]
    ranked = enc.rank(rr["query"], exp["documents"])
    check_ranking(f"{name} MaxSim rank", ranked, rr["scores"])
