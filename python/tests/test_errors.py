"""Errors are exceptions of wgbert.exceptions, each with the library's message."""

from __future__ import annotations

import pytest

import wgbert
from conftest import expected, load


def test_the_hierarchy():
    assert issubclass(wgbert.WgbertValueError, wgbert.WgbertError)
    assert issubclass(wgbert.WgbertValueError, ValueError)
    assert issubclass(wgbert.WgbertFileNotFoundError, wgbert.WgbertError)
    assert issubclass(wgbert.WgbertFileNotFoundError, FileNotFoundError)
    assert issubclass(wgbert.DeviceError, wgbert.WgbertError)
    assert not issubclass(wgbert.DeviceError, ValueError)


def test_missing_directory(tmp_path):
    missing = tmp_path / "no" / "such" / "dir"
    with pytest.raises(wgbert.WgbertFileNotFoundError, match="no/such/dir") as e:
        wgbert.Encoder(missing)
    assert isinstance(e.value, FileNotFoundError)


def test_bad_config(model_dir):
    d = model_dir("mlm_v4")
    (d / "config.json").write_text("{ this is not json")
    with pytest.raises(wgbert.WgbertValueError, match="config.json") as e:
        load(d)
    assert isinstance(e.value, ValueError)


def test_bad_dtype():
    d, _ = expected("st_mean_dense")
    with pytest.raises(wgbert.WgbertValueError, match='dtype must be "f16" or "f32", got "f64"'):
        wgbert.Encoder(d, dtype="f64")


def test_empty_input():
    d, exp = expected("cross_encoder")
    enc = load(d)
    with pytest.raises(wgbert.WgbertValueError, match="no documents to rank"):
        enc.rank(exp["query"], [])
    with pytest.raises(wgbert.WgbertValueError, match="batch_size must be at least 1"):
        load(expected("st_mean_dense")[0]).encode(["fish"], batch_size=0)


def test_too_long_without_truncation(model_dir):
    d = model_dir("mlm_v4")
    enc = load(d)
    long = " ".join(["w7"] * 600)
    with pytest.raises(wgbert.WgbertValueError, match=r"input 1: .*603 tokens.*512") as e:
        enc.fill_mask(["w5 [MASK]", long + " [MASK]"])
    assert isinstance(e.value, ValueError)
    cut = load(d, truncate=True)
    # Cut to the model's 512 tokens, the text's mask is gone; the short text still works.
    assert len(cut.fill_mask("w5 [MASK] w6")) == 1


def test_wrong_task_for_the_model(model_dir):
    cls = load(model_dir("cls_mean"))
    with pytest.raises(wgbert.WgbertValueError, match="this model cannot fill masks"):
        cls.fill_mask("w5 [MASK]")
    mlm = load(model_dir("mlm_v4"))
    with pytest.raises(wgbert.WgbertValueError, match="this model cannot classify"):
        mlm.predict(["w5 w6"])
    with pytest.raises(wgbert.WgbertValueError, match="no \\[MASK\\]"):
        mlm.fill_mask(["w5 w6"])
    cross = load(expected("cross_encoder")[0])
    with pytest.raises(wgbert.WgbertValueError, match="cross-encoder"):
        cross.encode(["fish"])
    with pytest.raises(wgbert.WgbertValueError, match="not a ColBERT model"):
        cross.encode_multi(["fish"], is_query=True)


def test_unknown_prompt_and_bad_arguments():
    enc = load(expected("st_mean_dense")[0])
    with pytest.raises(wgbert.WgbertValueError, match="nope"):
        enc.encode(["fish"], prompt_name="nope")
    with pytest.raises(wgbert.WgbertValueError, match="output_value"):
        enc.encode(["fish"], output_value="logits")
    with pytest.raises(wgbert.WgbertValueError, match="input 1: sentences must be strings"):
        enc.encode(["fish", 3])


@pytest.mark.parametrize("size", ["12", "lots", "1.5MiB"])
def test_bad_max_binding(size):
    d, _ = expected("st_mean_dense")
    with pytest.raises(wgbert.WgbertValueError, match="binding|size"):
        wgbert.Encoder(d, max_binding=size)
