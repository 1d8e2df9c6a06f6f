"""fill_mask and predict against transformers (scripts/make_fixtures.py): the fixtures store
token ids, which the word-level tokenizer of tests/common/model_dir.rs turns back into text.
Top-5 ids as the reference ranks them (ties within 1e-4 may swap), probabilities within a
relative 1e-4 of exp(logit - logsumexp); logits within 1e-4."""

from __future__ import annotations

import math

import numpy as np
import pytest

from conftest import TOL, assert_close, expected, load, text_of
from wgbert.exceptions import WgbertValueError

TIE = 1e-4
PROB_RTOL = 1e-4


def check_top5(got, ids, logits, lse):
    """got: [{"token", "score"}] x5 against the reference's top 6 at that position."""
    assert len(got) == 5 and len(ids) == 6
    for r, cand in enumerate(got):
        tid = cand["token"]
        match = [
            j for j in range(6)
            if ids[j] == tid and (j == r or abs(logits[j] - logits[r]) < TIE)
        ]
        assert match, f"rank {r} is id {tid}; reference top 6 {ids}"
        assert tid not in [c["token"] for c in got[:r]], f"id {tid} twice"
        p_ref = math.exp(logits[match[0]] - lse)
        err = abs(cand["score"] - p_ref) / p_ref
        assert err <= PROB_RTOL, f"rank {r} (id {tid}): {cand['score']} vs {p_ref}"


@pytest.mark.parametrize("name", ["mlm_v4", "mlm_v5_bf16", "mlm_sharded"])
def test_fill_mask_top5_matches_transformers(name, model_dir):
    _, exp = expected(name)
    enc = load(model_dir(name))
    assert enc.info["kind"] == "fill-mask"
    cases = [
        (s, ids) for s, ids in enumerate(exp["inputs"]) if 3 in ids and ids[0] == 1 and ids[-1] == 2
    ]
    assert len(cases) >= 2, "the fixture has sequences with a [MASK]"
    texts = [text_of(ids) for _, ids in cases]
    got = enc.fill_mask(texts, top_k=5)
    assert len(got) == len(texts)
    for (s, ids), per_text, text in zip(cases, got, texts):
        out = exp["outputs"][s]
        positions = [p for p, t in enumerate(ids) if t == 3]
        assert len(per_text) == len(positions), "one entry per [MASK]"
        for p, cands in zip(positions, per_text):
            check_top5(cands, out["mlm_top6"][p], out["mlm_top6_logits"][p], out["mlm_logsumexp"][p])
            for c in cands:
                if c["token"] >= 5:
                    assert c["token_str"] == f"w{c['token']}"
                    if len(positions) == 1:
                        assert c["sequence"] == text.replace("[MASK]", c["token_str"])
    # One string: its list of masks.
    single = enc.fill_mask(texts[0], top_k=3)
    assert len(single) == texts[0].count("[MASK]") and len(single[0]) == 3
    assert [c["token"] for c in single[0]] == [c["token"] for c in got[0][0][:3]]


def test_sequence_classifier_labels_and_logits_match_transformers(model_dir):
    _, exp = expected("cls_mean")
    enc = load(model_dir("cls_mean"))
    assert enc.info["kind"] == "classifier"
    assert enc.info["labels"] == ["negative", "neutral", "positive"]
    cases = [(s, ids) for s, ids in enumerate(exp["inputs"]) if len(ids) > 2 and ids[-1] == 2]
    texts = [text_of(ids) for _, ids in cases]
    logits = enc.predict(texts, raw_scores=True)
    assert logits.shape == (len(texts), 3) and logits.dtype == np.float32
    preds = enc.predict(texts)
    for (s, _), row, pred in zip(cases, logits, preds):
        want = exp["outputs"][s]["logits"]
        assert_close(f"cls_mean seq {s}", row, want)
        best = int(np.argmax(want))
        assert pred["label"] == enc.info["labels"][best]
        soft = np.exp(np.asarray(want) - max(want))
        assert abs(pred["score"] - soft[best] / soft.sum()) <= TOL
    # One text alone: a dict, the same label, the same score up to the kernels' rounding
    # (alone, its few rows may run another matmul kernel than the batch's).
    alone = enc.predict(texts[0])
    assert isinstance(alone, dict) and alone["label"] == preds[0]["label"]
    assert abs(alone["score"] - preds[0]["score"]) <= TOL


def test_sequence_classifier_takes_text_pairs(model_dir):
    # A pair is [CLS] a [SEP] b [SEP]: the same ids as the text "a [SEP] b" with this
    # word-level tokenizer, so the two must score alike.
    enc = load(model_dir("cls_mean"))
    pair = enc.predict(("w5 w6", "w7 w8"), raw_scores=True)
    joined = enc.predict("w5 w6 [SEP] w7 w8", raw_scores=True)
    assert pair.shape == (3,)
    assert_close("a pair", pair, joined)
    both = enc.predict([("w5 w6", "w7 w8"), ("w9", "w10")])
    assert len(both) == 2 and both[0]["label"] == enc.info["labels"][int(np.argmax(pair))]
    with pytest.raises(WgbertValueError):
        enc.predict([("w5", "w6"), "w7"])
    with pytest.raises(WgbertValueError):
        enc.predict([("w5", "w6", "w7")])


def test_token_classifier_logits_match_transformers(model_dir):
    _, exp = expected("tokcls")
    enc = load(model_dir("tokcls"))
    assert enc.info["kind"] == "token-classifier"
    cases = [(s, ids) for s, ids in enumerate(exp["inputs"]) if len(ids) > 2 and ids[-1] == 2]
    texts = [text_of(ids) for _, ids in cases]
    raw = enc.predict(texts, raw_scores=True)
    labelled = enc.predict(texts)
    for (s, ids), g, lab in zip(cases, raw, labelled):
        assert g.shape == (len(ids), 2)
        assert_close(f"tokcls seq {s}", g, exp["outputs"][s]["logits"])
        assert [t["token_id"] for t in lab] == ids
        for t, row in zip(lab, exp["outputs"][s]["logits"]):
            assert t["label"] == ["O", "ENT"][int(np.argmax(row))]


def test_max_binding_splits_the_table_and_keeps_the_answers(model_dir):
    """max_binding lowers the storage binding: the 64 KiB table of mlm_v4 is held in row
    pieces (info["split"]), and fill_mask gives the same tokens and probabilities."""
    d = model_dir("mlm_v4")
    whole = load(d)
    split = load(d, max_binding="30KiB")
    assert whole.info["split"] == []
    table = [s for s in split.info["split"] if s["name"].endswith("tok_embeddings.weight")]
    assert table and table[0]["pieces"] == [240, 240, 32], split.info["split"]
    assert load(d, max_binding=30 * 1024).info["split"] == split.info["split"]
    texts = ["w10 w11 [MASK] w12", "[MASK] w40"]
    a, b = whole.fill_mask(texts, top_k=5), split.fill_mask(texts, top_k=5)
    for x, y in zip(a, b):
        assert [c["token"] for c in x[0]] == [c["token"] for c in y[0]]
        np.testing.assert_allclose([c["score"] for c in y[0]], [c["score"] for c in x[0]],
                                   rtol=1e-5)
