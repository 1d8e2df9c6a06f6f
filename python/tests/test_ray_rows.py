"""wgbert.ray without a cluster: null texts (an error naming the row, or skipped and
counted), and which adapter an actor's GPU is (by PCI bus where the driver and the adapters
report one, else by position; never another GPU)."""

from __future__ import annotations

import logging

import numpy as np
import pytest

import wgbert
import wgbert.ray
from wgbert.ray import adapter_for_gpu

from conftest import expected


@pytest.fixture(scope="module")
def embedder():
    return wgbert.ray.Embedder(str(expected("st_mean_dense")[0]), dtype="f32", adapter="#0")


def test_null_texts_are_an_error_naming_the_row(embedder):
    batch = {"id": np.array(["a", "b", "c"]), "text": np.array(["fish", None, "the cat"], dtype=object)}
    with pytest.raises(wgbert.WgbertValueError, match=r"row 1 of the batch.*null"):
        embedder(batch)
    embedder.id_column = "id"
    with pytest.raises(wgbert.WgbertValueError, match=r"row id='b'"):
        embedder(batch)
    embedder.id_column = None
    with pytest.raises(wgbert.WgbertValueError, match="holds a int"):
        embedder({"text": np.array(["fish", 3], dtype=object)})


def test_null_texts_skipped_with_a_count(caplog):
    pd = pytest.importorskip("pandas")
    e = wgbert.ray.Embedder(str(expected("st_mean_dense")[0]), dtype="f32", adapter="#0",
                            nulls="skip")
    batch = {"id": np.array([1, 2, 3, 4]), "text": np.array(["fish", None, float("nan"), "dog"], dtype=object)}
    with caplog.at_level(logging.WARNING, logger="wgbert.ray"):
        out = e(batch)
    assert list(out["id"]) == [1, 4] and out["embedding"].shape == (2, 16)
    assert e.skipped == 2 and "skipped 2 rows" in caplog.text
    frame = pd.DataFrame({"id": [7, 8], "text": ["fish", None]})
    out = e(frame)
    assert list(out["id"]) == [7] and e.skipped == 3
    np.testing.assert_allclose(out["embedding"].iloc[0], e.encoder.encode_document("fish"), atol=1e-6)
    with pytest.raises(wgbert.WgbertValueError, match="nulls"):
        wgbert.ray.Embedder(str(expected("st_mean_dense")[0]), nulls="drop")


LISTED = [
    {"name": "llvmpipe", "device_type": "Cpu", "pci_bus_id": ""},
    {"name": "GPU A", "device_type": "DiscreteGpu", "pci_bus_id": "0000:41:00.0"},
    {"name": "GPU B", "device_type": "DiscreteGpu", "pci_bus_id": "0000:01:00.0"},
]
DRIVER = [
    {"index": 0, "uuid": "GPU-aaaa", "pci_bus_id": "00000000:01:00.0"},
    {"index": 1, "uuid": "GPU-bbbb", "pci_bus_id": "00000000:41:00.0"},
]


def test_gpus_are_matched_by_pci_bus():
    # The driver's GPU 0 is on bus 01, which is the adapter listed third.
    assert adapter_for_gpu(0, LISTED, DRIVER) == "#2"
    assert adapter_for_gpu("1", LISTED, DRIVER) == "#1"
    assert adapter_for_gpu("GPU-aaaa", LISTED, DRIVER) == "#2", "a UUID"
    with pytest.raises(wgbert.DeviceError, match="does not list"):
        adapter_for_gpu("GPU-cccc", LISTED, DRIVER)
    with pytest.raises(wgbert.DeviceError, match="no GPU adapter is on that bus"):
        adapter_for_gpu(0, LISTED[:2], DRIVER)


def test_without_bus_ids_gpus_are_positions_and_uuids_are_refused():
    bare = [dict(a, pci_bus_id="") for a in LISTED]
    assert adapter_for_gpu(0, bare, ()) == "#1"
    assert adapter_for_gpu(1, bare, DRIVER) == "#2", "the adapters report no bus"
    with pytest.raises(wgbert.DeviceError, match="2 GPU adapters"):
        adapter_for_gpu(2, bare, ())
    with pytest.raises(wgbert.DeviceError, match="no PCI bus"):
        adapter_for_gpu("GPU-aaaa", bare, ())
