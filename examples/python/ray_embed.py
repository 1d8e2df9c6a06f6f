"""Embed a corpus with Ray Data and wgbert: JSONL or Parquet in, Parquet out.

    pip install wgbert "ray[data]" pyarrow
    python examples/python/ray_embed.py --input corpus.jsonl --output embedded/ \
        --model nomic-ai/modernbert-embed-base --actors 4 --gpus-per-actor 1

Each actor loads the model once onto its own GPU (`--gpus-per-actor 1`: Ray gives each actor
one GPU and sets CUDA_VISIBLE_DEVICES; wgbert takes the adapter Ray assigned when `--adapter`
names it, else the first high-performance one). Rows keep all their columns and gain
`embedding`, a fixed-size float32 tensor column. With `--gpus-per-actor 0` the actors run on
whatever adapter they find (lavapipe on a machine without a GPU).
"""

from __future__ import annotations

import argparse
import time

import ray

import wgbert.ray


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--input", required=True, help=".jsonl (objects with a text field) or .parquet")
    ap.add_argument("--output", required=True, help="a directory of Parquet files")
    ap.add_argument("--model", default="nomic-ai/modernbert-embed-base")
    ap.add_argument("--text-column", default="text")
    ap.add_argument("--actors", type=int, default=1, help="actors, one model each")
    ap.add_argument("--gpus-per-actor", type=float, default=0, help="GPUs Ray reserves per actor")
    ap.add_argument("--batch-size", type=int, default=1024, help="rows per call")
    ap.add_argument("--dtype", default=None, help="f16 or f32 (default: f16 where the GPU has it)")
    ap.add_argument("--backend", default=None, help="vulkan, metal, dx12 or gl")
    ap.add_argument("--adapter", default=None, help="an adapter name to match")
    ap.add_argument("--query", action="store_true", help="embed as queries, not documents")
    ap.add_argument("--blocks", type=int, default=0,
                    help="repartition into this many blocks first (a single file is one block, "
                    "which only one actor would embed)")
    ap.add_argument("--address", default=None, help="a running Ray cluster (default: local)")
    args = ap.parse_args()

    ray.init(address=args.address)
    if args.input.endswith(".parquet"):
        ds = ray.data.read_parquet(args.input)
    else:
        ds = ray.data.read_json(args.input)  # one JSON object per line
    if args.blocks:
        ds = ds.repartition(args.blocks)
    started = time.monotonic()
    ds = ds.map_batches(
        wgbert.ray.Embedder,
        fn_constructor_kwargs={
            "model": args.model,
            "text_column": args.text_column,
            "query": args.query,
            "dtype": args.dtype,
            "backend": args.backend,
            "adapter": args.adapter,
        },
        concurrency=args.actors,
        num_gpus=args.gpus_per_actor,
        batch_size=args.batch_size,
    )
    ds.write_parquet(args.output)
    rows = ray.data.read_parquet(args.output).count()
    took = time.monotonic() - started
    print(f"{rows} rows embedded into {args.output} in {took:.1f} s ({rows / took:.0f} rows/s)")


if __name__ == "__main__":
    main()
