"""Ray Data: embed a dataset with one wgbert model per actor.

::

    import ray
    import wgbert.ray

    ds = ray.data.read_parquet("corpus.parquet")
    ds = ds.map_batches(
        wgbert.ray.Embedder,
        fn_constructor_kwargs={"model": "nomic-ai/modernbert-embed-base"},
        concurrency=4,      # actors: one model each
        num_gpus=1,         # per actor: one GPU each (leave out for lavapipe / CPU-only runs)
        batch_size=1024,    # rows per call
    )
    ds.write_parquet("embedded/")

This module does not need Ray itself: ``Embedder`` is a plain callable class, and Ray is
imported only by whoever runs the pipeline.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from . import Encoder, WgbertValueError, adapters

_GPU_TYPES = ("DiscreteGpu", "IntegratedGpu")


def adapter_for_gpu(gpu_id: int, listed: Sequence[Dict[str, Any]]) -> Optional[str]:
    """The ``adapter`` selector (``"#N"``) of the ``gpu_id``-th GPU among ``listed`` (the
    adapters of the backends a model loads from, in the driver's order), or ``None`` when
    there are not that many GPUs. Ray numbers an actor's GPUs as the CUDA driver does; on a
    node of identical GPUs both count them in bus order."""
    gpus: List[int] = [i for i, a in enumerate(listed) if a.get("device_type") in _GPU_TYPES]
    if 0 <= gpu_id < len(gpus):
        return f"#{gpus[gpu_id]}"
    return None


def _ray_adapter(backend: Optional[str]) -> Optional[str]:
    """In a Ray actor given a GPU (``num_gpus=1``), the adapter of that GPU. The graphics
    drivers do not read ``CUDA_VISIBLE_DEVICES``, so without this every actor of a node
    would take its first GPU."""
    try:
        import ray
    except ImportError:
        return None
    if not ray.is_initialized():
        return None
    try:
        ids = ray.get_gpu_ids()
    except Exception:
        return None
    if not ids:
        return None
    # The backends a model loads from when none is named: the primary ones.
    listed = adapters(backend or "vulkan,metal,dx12")
    return adapter_for_gpu(int(ids[0]), listed)


class Embedder:
    """A callable class for ``Dataset.map_batches``: each actor loads the model once, then
    embeds the text column of every batch it is given and adds the embedding column, a
    fixed-size float32 tensor column ``[rows, d]``.

    :param model: a local directory or a hub id (as :class:`wgbert.Encoder`).
    :param text_column: the column holding the texts (default ``"text"``).
    :param embedding_column: the column added (default ``"embedding"``).
    :param query: embed with the model's query prompt (``encode_query``) instead of its
        document prompt (``encode_document``, the default: corpora are documents); ``None``
        uses plain ``encode`` with ``prompt_name``/``prompt``.
    :param prompt_name, prompt, normalize_embeddings, truncate_dim: as ``encode``.
    :param encoder_kwargs: the remaining keyword arguments go to :class:`wgbert.Encoder`
        (``dtype``, ``backend``, ``adapter``, ``offline``, ``max_tokens``, ``truncate``).
        Without ``adapter``, an actor that Ray gave a GPU (``num_gpus=1``) loads the model
        onto that GPU (``adapter_for_gpu``); one without takes the default adapter.

    Batches may be ``dict[str, np.ndarray]`` (``batch_format="numpy"``, Ray's default) or
    pandas DataFrames (``batch_format="pandas"``); the result has the same form.
    """

    def __init__(
        self,
        model: str,
        *,
        text_column: str = "text",
        embedding_column: str = "embedding",
        query: Optional[bool] = False,
        prompt_name: Optional[str] = None,
        prompt: Optional[str] = None,
        normalize_embeddings: Optional[bool] = None,
        truncate_dim: Optional[int] = None,
        **encoder_kwargs: Any,
    ) -> None:
        if encoder_kwargs.get("adapter") is None:
            encoder_kwargs["adapter"] = _ray_adapter(encoder_kwargs.get("backend"))
        self.encoder = Encoder(model, **encoder_kwargs)
        self.text_column = text_column
        self.embedding_column = embedding_column
        self.query = query
        self.options: Dict[str, Any] = {
            "prompt_name": prompt_name,
            "prompt": prompt,
            "normalize_embeddings": normalize_embeddings,
            "truncate_dim": truncate_dim,
        }

    def embed(self, texts: list) -> np.ndarray:
        """The ``[len(texts), d]`` float32 vectors of ``texts`` under this embedder's options."""
        if self.query is None:
            return self.encoder.encode(texts, **self.options)
        if self.query:
            return self.encoder.encode_query(texts, **self.options)
        return self.encoder.encode_document(texts, **self.options)

    def __call__(self, batch: Any) -> Any:
        if self.text_column not in batch:
            raise WgbertValueError(
                f"the batch has no column {self.text_column!r} (columns: {list(batch.keys())})"
            )
        column = batch[self.text_column]
        texts = [str(t) for t in (column.tolist() if hasattr(column, "tolist") else column)]
        vectors = self.embed(texts)
        if hasattr(batch, "assign") and hasattr(batch, "columns"):
            # A pandas DataFrame: one array per row (Ray stores them as a tensor column).
            out = batch.copy()
            out[self.embedding_column] = list(vectors)
            return out
        out = dict(batch)
        out[self.embedding_column] = vectors
        return out
