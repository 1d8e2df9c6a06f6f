"""Shared helpers: the project's fixture models (tests/fixtures, tiny random ModernBERTs with
what transformers, sentence-transformers and PyLate computed on them) and the same
tolerances as the Rust tests (tests/sentence.rs, tests/parity.rs)."""

from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path

import numpy as np
import pytest

import wgbert

FIXTURES = Path(__file__).resolve().parents[2] / "tests" / "fixtures"
# f32 results within this of the reference (tests/sentence.rs, tests/parity.rs).
TOL = 1e-4
SPECIALS = ["[PAD]", "[CLS]", "[SEP]", "[MASK]", "[UNK]"]


@pytest.fixture
def ctrl_c():
    """Ctrl-C reaches Python as KeyboardInterrupt during the test, even where the run started
    with SIGINT ignored (a background job of a non-interactive shell), in which case
    `_thread.interrupt_main` does nothing."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def expected(name: str):
    d = FIXTURES / name
    return d, json.loads((d / "expected.json").read_text())


def load(path, **kwargs) -> wgbert.Encoder:
    kwargs.setdefault("dtype", "f32")
    return wgbert.Encoder(path, **kwargs)


def write_tokenizer(path: Path, vocab_size: int = 512) -> None:
    """The word-level tokenizer of tests/common/model_dir.rs: [PAD]=0 [CLS]=1 [SEP]=2
    [MASK]=3 [UNK]=4, then w5..w{vocab-1}."""
    vocab = {t: i for i, t in enumerate(SPECIALS)}
    vocab.update({f"w{i}": i for i in range(5, vocab_size)})
    added = [
        {"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
         "normalized": False, "special": True}
        for i, t in enumerate(SPECIALS)
    ]
    single = [{"SpecialToken": {"id": "[CLS]", "type_id": 0}},
              {"Sequence": {"id": "A", "type_id": 0}},
              {"SpecialToken": {"id": "[SEP]", "type_id": 0}}]
    pair = single + [{"Sequence": {"id": "B", "type_id": 0}},
                     {"SpecialToken": {"id": "[SEP]", "type_id": 0}}]
    tok = {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
        "normalizer": None, "pre_tokenizer": {"type": "Whitespace"},
        "post_processor": {
            "type": "TemplateProcessing", "single": single, "pair": pair,
            "special_tokens": {
                "[CLS]": {"id": "[CLS]", "ids": [1], "tokens": ["[CLS]"]},
                "[SEP]": {"id": "[SEP]", "ids": [2], "tokens": ["[SEP]"]},
            },
        },
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": True},
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "[UNK]"},
    }
    path.write_text(json.dumps(tok))


def text_of(ids) -> str:
    """The text that the word-level tokenizer turns into `ids` ([CLS] .. [SEP])."""
    assert ids[0] == 1 and ids[-1] == 2, ids
    return " ".join(SPECIALS[i] if i < 5 else f"w{i}" for i in ids[1:-1])


@pytest.fixture
def model_dir(tmp_path):
    """A copy of a fixture checkpoint with the word-level tokenizer beside it."""

    def make(name: str) -> Path:
        d = tmp_path / name
        shutil.copytree(FIXTURES / name, d)
        write_tokenizer(d / "tokenizer.json")
        return d

    return make


def assert_close(what: str, got, want, tol: float = TOL) -> None:
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, f"{what}: shape {got.shape}, expected {want.shape}"
    err = np.abs(got - want).max() if got.size else 0.0
    assert np.isfinite(got).all() and err <= tol, f"{what}: max abs error {err:.3e}"


os.environ.setdefault("HF_HUB_OFFLINE", "1")
