"""Ray Data on a local cluster: 2 actors embed 2,000 texts from Parquet into Parquet; every
row comes back once with its id, each vector equal to Encoder.encode_document of its text."""

from __future__ import annotations

import os

import numpy as np
import pytest

from conftest import expected, load

ray = pytest.importorskip("ray")
pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")


def corpus(n: int):
    words = ["the", "cat", "sat", "on", "mat", "paris", "capital", "france", "dog", "city",
             "fish", "river", "tree", "bird", "old", "small", "ran", "gpu", "code", "fast"]
    return [
        " ".join(words[(i * 13 + k * 7) % len(words)] for k in range(1 + (i * 5) % 23))
        for i in range(n)
    ]


def test_ray_embedder_two_actors_parquet(tmp_path):
    import wgbert.ray

    model = str(expected("st_mean_dense")[0])
    texts = corpus(2000)
    ids = [f"doc-{i:05d}" for i in range(len(texts))]
    src = tmp_path / "in.parquet"
    pq.write_table(pa.table({"id": ids, "text": texts}), src)
    out = tmp_path / "out"
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=256 * 1024 * 1024)
    try:
        # One file is one block; eight give both actors work.
        ds = ray.data.read_parquet(str(src)).repartition(8)
        ds = ds.map_batches(
            wgbert.ray.Embedder,
            fn_constructor_kwargs={
                "model": model,
                "dtype": "f32",
                "backend": os.environ.get("WGPU_BACKEND"),
            },
            concurrency=2,
            # Half a CPU each: the two actors leave the reading and writing tasks one of the
            # cluster's two CPUs (whole CPUs would starve them).
            num_cpus=0.5,
            batch_size=250,
        )
        ds.write_parquet(str(out))
        rows = ray.data.read_parquet(str(out)).take_all()
    finally:
        ray.shutdown()
    got_ids = [r["id"] for r in rows]
    assert len(got_ids) == len(ids), "every row once"
    assert sorted(got_ids) == ids, "every id once"
    enc = load(model)
    want = enc.encode_document(texts)
    index = {i: k for k, i in enumerate(ids)}
    for r in rows:
        k = index[r["id"]]
        assert r["text"] == texts[k]
        v = np.asarray(r["embedding"], dtype=np.float32)
        assert v.shape == (16,)
        np.testing.assert_allclose(v, want[k], atol=1e-5, rtol=0, err_msg=r["id"])
