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

import logging
import math
import os
import re
import shutil
import subprocess
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from . import Encoder, WgbertValueError, adapters
from .exceptions import DeviceError

_GPU_TYPES = ("DiscreteGpu", "IntegratedGpu")
_log = logging.getLogger("wgbert.ray")


def _bus(address: Optional[str]) -> Optional[str]:
    """A PCI address in one form: ``dddd:bb:dd.f`` in lower-case hex (the NVIDIA tools
    write an 8-digit domain, Vulkan drivers a 4-digit one)."""
    m = re.fullmatch(
        r"\s*(?:([0-9a-fA-F]+):)?([0-9a-fA-F]{1,2}):([0-9a-fA-F]{1,2})\.([0-7])\s*",
        address or "",
    )
    if not m:
        return None
    domain, bus, dev, fn = m.groups()
    return f"{int(domain or '0', 16):04x}:{int(bus, 16):02x}:{int(dev, 16):02x}.{int(fn)}"


def driver_gpus() -> List[Dict[str, Any]]:
    """The GPUs the NVIDIA driver reports, in its order (``nvidia-smi``'s index, which is PCI
    bus order): ``{"index", "uuid", "pci_bus_id"}`` each. Empty where there is no NVIDIA
    driver (then Ray's GPU ids are taken as positions among the GPU adapters)."""
    smi = shutil.which("nvidia-smi")
    if smi:
        out = subprocess.run(
            [smi, "--query-gpu=index,uuid,pci.bus_id", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=30, check=False,
        )
        if out.returncode == 0:
            found = []
            for line in out.stdout.splitlines():
                parts = [p.strip() for p in line.split(",")]
                if len(parts) == 3 and parts[0].isdigit():
                    found.append({"index": int(parts[0]), "uuid": parts[1], "pci_bus_id": parts[2]})
            return found
    root = "/proc/driver/nvidia/gpus"
    found = []
    if os.path.isdir(root):
        for k, name in enumerate(sorted(os.listdir(root))):
            info = {"index": k, "uuid": "", "pci_bus_id": name}
            try:
                with open(os.path.join(root, name, "information")) as f:
                    for line in f:
                        key, _, value = line.partition(":")
                        if key.strip() == "GPU UUID":
                            info["uuid"] = value.strip()
                        elif key.strip() == "Bus Location":
                            info["pci_bus_id"] = value.strip()
            except OSError:
                pass
            found.append(info)
    return found


def adapter_for_gpu(
    gpu_id: Any,
    listed: Sequence[Dict[str, Any]],
    driver: Sequence[Dict[str, Any]] = (),
) -> str:
    """The ``adapter`` selector (``"#N"``) of the GPU Ray assigned: ``gpu_id`` is an index or
    a UUID (``GPU-...``), ``listed`` the adapters of the backends a model loads from (in the
    driver's order), ``driver`` what :func:`driver_gpus` found.

    Where the driver names the GPU's PCI bus and the adapters report theirs, the adapter on
    that bus is the one; none there is a :class:`DeviceError`. Where they do not, an index
    is a position among the GPU adapters (a UUID then cannot be placed: an error). Never a
    silent fallback to another GPU."""
    ident = str(gpu_id).strip()
    gpus = [i for i, a in enumerate(listed) if a.get("device_type") in _GPU_TYPES]
    names = ", ".join(f"#{i} {listed[i].get('name')}" for i in gpus) or "none"
    by_bus: Dict[str, int] = {}
    for i in gpus:
        b = _bus(listed[i].get("pci_bus_id"))
        if b is not None:
            by_bus.setdefault(b, i)
    if ident.isdigit():
        entry = next((g for g in driver if g.get("index") == int(ident)), None)
    else:
        entry = next((g for g in driver if str(g.get("uuid", "")).lower() == ident.lower()), None)
    if driver and entry is None:
        listed_ids = ", ".join(f"{g.get('index')} {g.get('uuid')}" for g in driver)
        raise DeviceError(f"Ray assigned GPU {ident}, which the driver does not list ({listed_ids})")
    bus = _bus(entry.get("pci_bus_id")) if entry else None
    if bus is not None and by_bus:
        if bus in by_bus:
            return f"#{by_bus[bus]}"
        raise DeviceError(
            f"Ray assigned GPU {ident} on PCI bus {bus}, and no GPU adapter is on that bus "
            f"(adapters: {names}); pass adapter= to choose one"
        )
    if not ident.isdigit():
        raise DeviceError(
            f"Ray assigned GPU {ident}, and the adapters report no PCI bus to find it by "
            f"(adapters: {names}); pass adapter= to choose one"
        )
    k = int(ident)
    if k < len(gpus):
        return f"#{gpus[k]}"
    raise DeviceError(
        f"Ray assigned GPU {k}, but there are {len(gpus)} GPU adapters ({names}); "
        "pass adapter= to choose one"
    )


def _ray_adapter(backend: Optional[str]) -> Optional[str]:
    """In a Ray actor given a GPU (``num_gpus=1``), the adapter of that GPU; ``None``
    outside Ray or without a GPU. The graphics drivers do not read ``CUDA_VISIBLE_DEVICES``,
    so without this every actor of a node would take its first GPU."""
    try:
        import ray
    except ImportError:
        return None
    if not ray.is_initialized():
        return None
    ids = ray.get_gpu_ids()
    if not ids:
        return None
    # The backends a model loads from when none is named: the primary ones.
    listed = adapters(backend or "vulkan,metal,dx12")
    return adapter_for_gpu(ids[0], listed, driver_gpus())


def _is_null(value: Any) -> bool:
    return (
        value is None
        or (isinstance(value, float) and math.isnan(value))
        or type(value).__name__ in ("NAType", "NaTType")
    )


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
    :param nulls: what a null text (None, NaN) does: ``"error"`` (the default) raises
        :class:`WgbertValueError` naming the row; ``"skip"`` leaves the row out of the
        output, logs how many were left out, and counts them in ``skipped``.
    :param id_column: a column that names rows in errors (default: their place in the batch).
    :param encoder_kwargs: the remaining keyword arguments go to :class:`wgbert.Encoder`
        (``dtype``, ``backend``, ``adapter``, ``offline``, ``max_tokens``, ``truncate``).
        Without ``adapter``, an actor that Ray gave a GPU (``num_gpus=1``) loads the model
        onto that GPU (``adapter_for_gpu``: by PCI bus where the driver reports it, else by
        position; a GPU that cannot be found is a :class:`DeviceError`); one without takes
        the default adapter.

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
        nulls: str = "error",
        id_column: Optional[str] = None,
        **encoder_kwargs: Any,
    ) -> None:
        if nulls not in ("error", "skip"):
            raise WgbertValueError(f'nulls must be "error" or "skip", got {nulls!r}')
        self.nulls = nulls
        self.id_column = id_column
        self.skipped = 0
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
        values = column.tolist() if hasattr(column, "tolist") else list(column)
        nulls = [i for i, t in enumerate(values) if _is_null(t)]
        for i, t in enumerate(values):
            if not isinstance(t, str) and not _is_null(t):
                raise WgbertValueError(
                    f"{self._row(batch, i)}: {self.text_column!r} holds a {type(t).__name__}, "
                    "not a string"
                )
        if nulls and self.nulls == "error":
            raise WgbertValueError(
                f"{self._row(batch, nulls[0])}: {self.text_column!r} is null ({len(nulls)} "
                "null rows in this batch); pass nulls=\"skip\" to leave such rows out"
            )
        if nulls:
            self.skipped += len(nulls)
            _log.warning(
                "skipped %d rows with a null %r (%d so far)",
                len(nulls), self.text_column, self.skipped,
            )
            gone = set(nulls)
            keep = np.array([i for i in range(len(values)) if i not in gone], dtype=np.int64)
            values = [values[i] for i in keep]
            if hasattr(batch, "iloc"):
                batch = batch.iloc[keep]
            else:
                batch = {k: np.asarray(v)[keep] for k, v in batch.items()}
        vectors = self.embed(values)
        if hasattr(batch, "assign") and hasattr(batch, "columns"):
            # A pandas DataFrame: one array per row (Ray stores them as a tensor column).
            out = batch.copy()
            out[self.embedding_column] = list(vectors)
            return out
        out = dict(batch)
        out[self.embedding_column] = vectors
        return out

    def _row(self, batch: Any, i: int) -> str:
        if self.id_column is not None and self.id_column in batch:
            col = batch[self.id_column]
            value = col.iloc[i] if hasattr(col, "iloc") else col[i]
            value = value.item() if hasattr(value, "item") else value
            return f"row {self.id_column}={value!r}"
        return f"row {i} of the batch"
