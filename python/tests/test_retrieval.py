"""Late chunking, quantized embeddings, token pooling and the sparse encoder against the
references of scripts/make_retrieval_fixtures.py and scripts/make_st_fixtures.py, at the
Rust tests' tolerances (tests/retrieval.rs, tests/sparse.rs)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

import wgbert
from conftest import FIXTURES, TOL, assert_close, expected, load


def late_case_args(case):
    c = case["chunking"]
    if "spans" in c:
        return {"chunks": [tuple(s) for s in c["spans"]]}
    if "separator" in c:
        return {"separator": c["separator"]}
    return {"chunk_tokens": c["tokens"]}


def test_late_chunks_equal_pooled_transformers_states():
    _, exp = expected("late_chunking")
    enc = load(FIXTURES / exp["model"])
    for c, case in enumerate(exp["cases"]):
        doc = exp["documents"][case["doc"]]
        got = enc.encode_late_chunks(
            doc, prompt_name=case["prompt_name"], overlap=case["overlap"], **late_case_args(case)
        )
        assert got["n_tokens"] == case["n_tokens"] and got["windows"] == case["windows"], c
        assert got["spans"] == [tuple(ch["span"]) for ch in case["chunks"]], c
        assert got["chunk_tokens"] == [ch["n_tokens"] for ch in case["chunks"]], c
        assert got["embeddings"].dtype == np.float32
        assert_close(f"case {c}", got["embeddings"], [ch["embedding"] for ch in case["chunks"]])
    # Several documents at once, each with its own chunking (None: the separator).
    docs = exp["documents"][:2]
    both = enc.encode_late_chunks(docs, [[(0, 10)], None], separator=",")
    assert len(both) == 2 and both[0]["spans"] == [(0, 10)] and len(both[1]["spans"]) == 2


def test_late_chunking_errors_name_the_document():
    _, exp = expected("late_chunking")
    enc = load(FIXTURES / exp["model"])
    with pytest.raises(wgbert.WgbertValueError, match=r"input 1.*\[2, 9\)"):
        enc.encode_late_chunks(["the cat", "fish"], [[(0, 3)], [(2, 9)]])
    with pytest.raises(wgbert.WgbertValueError, match="input 0"):
        enc.encode_late_chunks(["the cat"])
    colbert = load(FIXTURES / "mve_native")
    with pytest.raises(wgbert.WgbertValueError, match="late-chunk"):
        colbert.encode_late_chunks("fish", [(0, 4)])


def test_quantize_embeddings_equals_sentence_transformers():
    d, exp = expected("quantize")
    emb = np.asarray(exp["embeddings"], dtype=np.float32)
    ranges = np.load(d / "ranges.npy")
    for case in exp["cases"]:
        p = case["precision"]
        r = ranges if case["ranges"] else None
        got = wgbert.quantize_embeddings(emb, p, ranges=r)
        assert got.dtype == (np.int8 if p in ("int8", "binary") else np.uint8), p
        np.testing.assert_array_equal(got.astype(int), np.asarray(case["values"]), err_msg=p)
        # encode(precision=...): the floats differ by ~1e-7, so one bucket at most.
        enc_q = load(FIXTURES / "st_mean_dense").encode(exp["texts"], precision=p, ranges=r)
        assert enc_q.dtype == got.dtype and enc_q.shape == got.shape
        assert np.abs(enc_q.astype(int) - got.astype(int)).max() <= 1, p
    with pytest.raises(wgbert.WgbertValueError, match="1 embedding"):
        wgbert.quantize_embeddings(emb[:1], "int8")
    with pytest.raises(wgbert.WgbertValueError, match="precision"):
        wgbert.quantize_embeddings(emb, "int4")


def test_token_pooling_matches_multi_vector_encoder():
    d, exp = expected("mve_pooled")
    enc = load(d)
    for what, texts, query in [("query", exp["queries"], True), ("document", exp["documents"], False)]:
        got = enc.encode_multi(texts, is_query=query)
        want = exp[f"{what}_embeddings"]
        assert [g.shape[0] for g in got] == [len(w) for w in want], what
        for g, w in zip(got, want):
            assert_close(what, g, w)


def test_sparse_encoder_matches_sparse_encoder():
    scipy_sparse = pytest.importorskip("scipy.sparse")
    for name in ["splade_max", "splade_sum"]:
        d, exp = expected(name)
        enc = wgbert.SparseEncoder(d, dtype="f32")
        assert enc.info["kind"] == "sparse"
        for case in exp["cases"]:
            m = enc.encode(exp["texts"], prompt_name=case["prompt_name"],
                           max_active_dims=case["max_active_dims"])
            assert isinstance(m, scipy_sparse.csr_matrix) and m.dtype == np.float32
            assert m.shape[0] == len(exp["texts"]) and m.shape[1] > m.indices.max()
            for i, want in enumerate(case["vectors"]):
                row = m[i]
                assert list(row.indices) == want["indices"], f"{name} {case} row {i}"
                assert_close(f"{name} row {i}", row.data, want["values"])
        q = enc.encode_query(exp["rerank"]["query"])
        docs = enc.encode_document(exp["rerank"]["documents"])
        scores = enc.similarity(q, docs)
        assert scores.shape == (1, len(exp["rerank"]["documents"]))
        assert_close(f"{name} similarity", scores[0], exp["rerank"]["scores"])
        ranked = enc.rank(exp["rerank"]["query"], exp["rerank"]["documents"])
        want = exp["rerank"]["scores"]
        assert sorted(r["corpus_id"] for r in ranked) == list(range(len(want)))
        for r in ranked:
            assert abs(r["score"] - want[r["corpus_id"]]) <= TOL
        for a, b in zip(ranked, ranked[1:]):
            assert want[a["corpus_id"]] >= want[b["corpus_id"]] - TOL
        # decode: every non-zero term, largest first; top_k keeps the first ones.
        terms = enc.decode(docs)
        assert len(terms) == docs.shape[0]
        first = docs[0]
        assert len(terms[0]) == first.nnz
        weights = [w for _, w in terms[0]]
        assert weights == sorted(weights, reverse=True)
        assert enc.decode(docs[0], top_k=2) == [terms[0][:2]]
        dense = first.toarray()[0]
        assert enc.decode(dense, top_k=2) == terms[0][:2], "a 1-D vector gives one list"


def test_sparse_encoder_needs_scipy_and_a_sparse_model(monkeypatch):
    d, exp = expected("splade_max")
    enc = wgbert.SparseEncoder(d, dtype="f32")
    monkeypatch.setitem(sys.modules, "scipy", None)
    monkeypatch.setitem(sys.modules, "scipy.sparse", None)
    with pytest.raises(ImportError, match="scipy"):
        enc.encode(exp["texts"][:1])
    with pytest.raises(wgbert.WgbertValueError, match="not a sparse"):
        wgbert.SparseEncoder(FIXTURES / "st_mean_dense", dtype="f32")
