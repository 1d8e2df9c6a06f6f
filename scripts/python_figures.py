"""Figures of the Python package, in one run, as ratios (not timed tests):

1. Python `Encoder.encode` throughput against `wgbert embed` on the same texts and model,
   each end to end in its own process (start, load, compile, embed, write the vectors);
   best of `--repeat` runs each. The goal is a ratio >= 0.9.
2. The Ray Data pipeline (`wgbert.ray.Embedder`, Parquet in and out) with 1 and with 2
   actors on a local cluster, and the ratio of the two.

Usage (a venv with the wheel, ray[data] and pyarrow, e.g. the one scripts/test_python.sh
makes, and a built `wgbert` binary):

    python scripts/python_figures.py --wgbert target/release/wgbert \
        --model tests/fixtures/st_mean_dense --texts 20000

Prints one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time


WORDS = (
    "the cat sat on the mat paris is the capital of france rust code runs on gpu fast "
    "a small dog ran in old city what river tree bird fish and to was for with as by at"
).split()


def corpus(n: int):
    return [
        " ".join(WORDS[(i * 13 + k * 7) % len(WORDS)] for k in range(4 + (i * 5) % 60))
        for i in range(n)
    ]


def best_of(repeat: int, fn) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


PY_EMBED = """
import sys, numpy as np, wgbert
texts = open(sys.argv[2]).read().splitlines()
enc = wgbert.Encoder(sys.argv[1], dtype=sys.argv[4] or None)
np.save(sys.argv[3], enc.encode(texts))
"""


def ray_run(model: str, src: str, actors: int, dtype, batch: int) -> float:
    import ray
    import wgbert.ray

    out = tempfile.mkdtemp(prefix="wgbert-ray-")
    started = time.perf_counter()
    ds = ray.data.read_parquet(src).repartition(8).map_batches(
        wgbert.ray.Embedder,
        fn_constructor_kwargs={"model": model, "dtype": dtype},
        concurrency=actors,
        num_cpus=0.5,  # leaves CPU for the read and write tasks
        batch_size=batch,
    )
    ds.write_parquet(out)
    took = time.perf_counter() - started
    assert ray.data.read_parquet(out).count() > 0
    return took


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--wgbert", default="target/release/wgbert")
    ap.add_argument("--model", default="tests/fixtures/st_mean_dense")
    ap.add_argument("--dtype", default="", help="f16 or f32 (default: the adapter's)")
    ap.add_argument("--texts", type=int, default=20000)
    ap.add_argument("--ray-texts", type=int, default=None, help="default: --texts")
    ap.add_argument("--ray-batch", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-ray", action="store_true")
    args = ap.parse_args()

    texts = corpus(args.texts)
    tmp = tempfile.mkdtemp(prefix="wgbert-figures-")
    txt = os.path.join(tmp, "texts.txt")
    with open(txt, "w") as f:
        f.write("\n".join(texts) + "\n")

    cli = [args.wgbert, "--model", args.model, "--quiet"]
    if args.dtype:
        cli += ["--dtype", args.dtype]
    cli += ["embed", "--input", txt, "--format", "npy", "--output", os.path.join(tmp, "cli.npy")]
    py = [sys.executable, "-c", PY_EMBED, args.model, txt, os.path.join(tmp, "py.npy"), args.dtype]
    # One run each first: caches (pipelines, tiles) warm for both.
    subprocess.run(cli, check=True)
    subprocess.run(py, check=True)
    t_cli = best_of(args.repeat, lambda: subprocess.run(cli, check=True))
    t_py = best_of(args.repeat, lambda: subprocess.run(py, check=True))

    import numpy as np

    a = np.load(os.path.join(tmp, "cli.npy"))
    b = np.load(os.path.join(tmp, "py.npy"))
    same = float(np.abs(a - b).max())
    figures = {
        "texts": len(texts),
        "model": args.model,
        "cli_texts_per_s": len(texts) / t_cli,
        "python_texts_per_s": len(texts) / t_py,
        "python_over_cli": t_cli / t_py,
        "max_abs_difference_python_vs_cli": same,
    }

    if not args.no_ray:
        import pyarrow as pa
        import pyarrow.parquet as pq
        import ray

        n = args.ray_texts or args.texts
        src = os.path.join(tmp, "in.parquet")
        pq.write_table(pa.table({"id": list(range(n)), "text": corpus(n)}), src)
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        try:
            dtype = args.dtype or None
            ray_run(args.model, src, 1, dtype, args.ray_batch)  # warm-up: workers, caches
            t1 = min(ray_run(args.model, src, 1, dtype, args.ray_batch) for _ in range(2))
            t2 = min(ray_run(args.model, src, 2, dtype, args.ray_batch) for _ in range(2))
        finally:
            ray.shutdown()
        figures.update(
            {
                "ray_texts": n,
                "ray_1_actor_texts_per_s": n / t1,
                "ray_2_actors_texts_per_s": n / t2,
                "ray_2_over_1": t1 / t2,
            }
        )
    print(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
