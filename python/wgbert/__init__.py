"""wgbert: ModernBERT inference on any GPU (Vulkan, Metal, DX12), from Python.

The API follows sentence-transformers' names where a counterpart exists::

    import wgbert

    model = wgbert.Encoder("nomic-ai/modernbert-embed-base")
    queries = model.encode_query(["what is the capital of france?"])
    docs = model.encode_document(["Paris is the capital of France.", "Berlin is in Germany."])
    scores = queries @ docs.T

One class loads any ModernBERT checkpoint the ``wgbert`` command line loads (plain,
sentence-transformers and PyLate layouts, with their prompts and heads) and serves what its
heads can do: ``encode`` (bi-encoders), ``rank`` (cross-encoders, bi-encoders, ColBERT),
``encode_multi`` (ColBERT), ``fill_mask`` (masked-LM heads) and ``predict`` (classifiers).

The GIL is released while texts are tokenized and run on the GPU, so one ``Encoder`` may be
shared by several threads; ``encode`` checks for Ctrl-C between batches. Errors are the
exceptions of :mod:`wgbert.exceptions`, all under :class:`WgbertError`.
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np

from . import _wgbert
from ._progress import Bar
from .exceptions import DeviceError, WgbertError, WgbertFileNotFoundError, WgbertValueError

__version__ = _wgbert.__version__

__all__ = [
    "Encoder",
    "adapters",
    "WgbertError",
    "WgbertValueError",
    "WgbertFileNotFoundError",
    "DeviceError",
    "__version__",
]

# Texts per chunk when no batch_size is given: each chunk is packed into GPU batches of up to
# max_tokens tokens, so this only sets how often Ctrl-C and the progress bar are looked at.
_DEFAULT_CHUNK = 1024


def adapters(backend: Optional[str] = None) -> List[Dict[str, Any]]:
    """Every GPU adapter the graphics backends expose (all backends, or ``backend``:
    ``"vulkan"``, ``"metal"``, ``"dx12"``, ``"gl"``, comma-separated): name, backend, device
    type, driver and capabilities (f16, subgroups, cooperative matrices, limits)."""
    return json.loads(_wgbert.adapters_json(backend))


def _texts(sentences: Union[str, Sequence[str]], what: str = "sentences") -> List[str]:
    if isinstance(sentences, str):
        return [sentences]
    if isinstance(sentences, np.ndarray):
        sentences = sentences.tolist()
    try:
        texts = list(sentences)
    except TypeError:
        raise WgbertValueError(f"{what} must be a string or a list of strings") from None
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise WgbertValueError(
                f"input {i}: {what} must be strings, got {type(t).__name__}"
            )
    return texts


def _split(flat: bytearray, rows: List[int], width: int) -> List[np.ndarray]:
    values = np.frombuffer(flat, dtype="<f4").astype(np.float32, copy=False)
    out = []
    start = 0
    for n in rows:
        out.append(values[start * width : (start + n) * width].reshape(n, width))
        start += n
    return out


class Encoder:
    """A ModernBERT model loaded onto a GPU.

    :param model: a local directory or a Hugging Face hub id (``owner/name[@revision]``).
    :param dtype: ``"f16"`` or ``"f32"`` storage (default: f16 where the GPU has it).
    :param backend: graphics backend(s): ``"vulkan"``, ``"metal"``, ``"dx12"``, ``"gl"``
        (default: ``WGPU_BACKEND``, else the primary ones).
    :param adapter: use the first adapter whose name contains this (default:
        ``WGPU_ADAPTER_NAME``, else the high-performance one).
    :param offline: never touch the network (hub cache or local directory only).
    :param max_tokens: largest number of tokens in one GPU batch (default: sized to the
        device, up to 32768).
    :param truncate: cut texts longer than the model's limit instead of raising
        :class:`WgbertValueError` (sentence-transformers always truncates; wgbert refuses
        unless asked).
    :param tokenizer: a ``tokenizer.json`` to use instead of the model's.
    :param show_progress_bar: draw download and weight-upload progress on stderr.
    :param max_binding: the largest storage binding to use, in bytes (an int) or as a size
        (``"64MiB"``); it only lowers the adapter's own limit, and weights larger than it are
        held in row pieces (default: ``WGBERT_MAX_BINDING``, else the adapter's limit).

    Environment variables are read as the ``wgbert`` command line reads them
    (``WGBERT_CACHE``, ``HF_HOME``, ``HF_TOKEN``, ...); the arguments override them.
    """

    def __init__(
        self,
        model: Union[str, "os.PathLike[str]"],
        *,
        dtype: Optional[str] = None,
        backend: Optional[str] = None,
        adapter: Optional[str] = None,
        offline: bool = False,
        max_tokens: Optional[int] = None,
        truncate: bool = False,
        tokenizer: Optional[Union[str, "os.PathLike[str]"]] = None,
        show_progress_bar: bool = False,
        max_binding: Optional[Union[int, str]] = None,
    ) -> None:
        self._inner = _wgbert.Encoder(
            os.fspath(model),
            dtype=dtype,
            backend=backend,
            adapter=adapter,
            offline=offline,
            max_tokens=max_tokens,
            truncate=truncate,
            tokenizer=None if tokenizer is None else os.fspath(tokenizer),
            progress=Bar() if show_progress_bar else None,
            max_binding=None if max_binding is None else str(max_binding),
        )
        self._info = json.loads(self._inner.info_json())

    def __repr__(self) -> str:
        i = self._info
        return (
            f"wgbert.Encoder({i['model']!r}, kind={i['kind']!r}, dtype={i['dtype']!r}, "
            f"adapter={i['adapter']!r})"
        )

    @property
    def info(self) -> Dict[str, Any]:
        """What the model is and where it runs: ``model``, ``kind`` (``embedder``,
        ``cross-encoder``, ``colbert``, ``fill-mask``, ``classifier``, ``token-classifier``,
        ``encoder``), ``adapter``, ``backend``, ``device_type``, ``dtype``, ``f16_kernels``
        (the matmul and attention kernels f16 runs, tensor-core or not and why), ``hidden_size``,
        ``dimensions`` (of ``encode``'s vectors), ``max_length`` (tokens per text),
        ``max_batch_tokens``, ``prompts``, ``default_prompt_name``, ``similarity``, ``labels``,
        ``heads``, ``weight_bytes``, ``split`` (the weights held in row pieces: ``name``,
        ``bytes``, ``pieces``, the rows of each)."""
        return dict(self._info)

    def get_sentence_embedding_dimension(self) -> int:
        """The width of ``encode``'s vectors (before ``truncate_dim``)."""
        return int(self._info["dimensions"])

    @property
    def max_seq_length(self) -> Optional[int]:
        """The longest text in tokens, special tokens included."""
        return self._info["max_length"]

    @property
    def prompts(self) -> Dict[str, str]:
        """The model's named prompts."""
        return dict(self._info["prompts"])

    # -- embeddings -----------------------------------------------------------------------

    def encode(
        self,
        sentences: Union[str, Sequence[str]],
        *,
        prompt_name: Optional[str] = None,
        prompt: Optional[str] = None,
        normalize_embeddings: Optional[bool] = None,
        truncate_dim: Optional[int] = None,
        batch_size: Optional[int] = None,
        show_progress_bar: bool = False,
        output_value: str = "sentence_embedding",
    ) -> Union[np.ndarray, List[np.ndarray]]:
        """Embeds texts as the model's sentence-transformers layout does (prompt, Pooling,
        Dense, Normalize).

        :param sentences: a string or a list of strings.
        :param prompt_name: one of the model's prompts (``info["prompts"]``); default: the
            model's ``default_prompt_name``, if any.
        :param prompt: this text before each sentence (wins over ``prompt_name``; ``""``
            means no prompt).
        :param normalize_embeddings: L2-normalize each vector (after ``truncate_dim``).
        :param truncate_dim: keep the first values of each vector (Matryoshka).
        :param batch_size: texts per chunk; each chunk is packed into GPU batches of up to
            ``max_tokens`` tokens, and Ctrl-C and the progress bar are handled between
            chunks (default 1024).
        :param show_progress_bar: draw a bar on stderr.
        :param output_value: ``"sentence_embedding"``, or ``"token_embeddings"`` for the
            encoder's final state of every token.
        :returns: a float32 array ``[n, d]`` (``[d]`` for one string); with
            ``token_embeddings``, a list of ``[tokens, hidden]`` arrays (one array for one
            string).
        """
        single = isinstance(sentences, str)
        texts = _texts(sentences)
        if output_value not in ("sentence_embedding", "token_embeddings"):
            raise WgbertValueError(
                "output_value must be \"sentence_embedding\" or \"token_embeddings\", "
                f"got {output_value!r}"
            )
        per_token = output_value == "token_embeddings"
        flat, rows, width = self._inner.embed(
            texts,
            prompt_name=prompt_name,
            prompt=prompt,
            normalize=bool(normalize_embeddings),
            truncate_dim=truncate_dim,
            per_token=per_token,
            batch_size=_DEFAULT_CHUNK if batch_size is None else batch_size,
            progress=Bar("encoding") if show_progress_bar else None,
        )
        if per_token:
            arrays = _split(flat, rows, width)
            return arrays[0] if single else arrays
        matrix = np.frombuffer(flat, dtype="<f4").astype(np.float32, copy=False)
        matrix = matrix.reshape(len(texts), width)
        return matrix[0] if single else matrix

    def _role(self, query: bool, prompt_name: Optional[str], prompt: Optional[str]):
        if prompt_name is None and prompt is None:
            prompt = self._inner.role_prompt(query)
        return prompt_name, prompt

    def encode_query(self, sentences: Union[str, Sequence[str]], **kwargs: Any):
        """``encode`` with the model's query prompt (``query`` or ``search_query``) unless
        ``prompt_name`` or ``prompt`` is given, as sentence-transformers 5 does."""
        pn, p = self._role(True, kwargs.pop("prompt_name", None), kwargs.pop("prompt", None))
        return self.encode(sentences, prompt_name=pn, prompt=p, **kwargs)

    def encode_document(self, sentences: Union[str, Sequence[str]], **kwargs: Any):
        """``encode`` with the model's document prompt (``document``, ``passage``,
        ``search_document`` or ``corpus``) unless ``prompt_name`` or ``prompt`` is given."""
        pn, p = self._role(False, kwargs.pop("prompt_name", None), kwargs.pop("prompt", None))
        return self.encode(sentences, prompt_name=pn, prompt=p, **kwargs)

    def encode_multi(
        self,
        texts: Union[str, Sequence[str]],
        *,
        is_query: bool,
        batch_size: Optional[int] = None,
    ) -> Union[np.ndarray, List[np.ndarray]]:
        """ColBERT (PyLate) per-token vectors: a list of float32 ``[tokens, d]`` arrays (one
        array for one string), queries expanded with ``[MASK]`` as PyLate does."""
        single = isinstance(texts, str)
        items = _texts(texts, "texts")
        flat, rows, width = self._inner.embed_multi(
            items,
            is_query=is_query,
            batch_size=_DEFAULT_CHUNK if batch_size is None else batch_size,
        )
        arrays = _split(flat, rows, width)
        return arrays[0] if single else arrays

    # -- ranking and scoring --------------------------------------------------------------

    def rank(
        self,
        query: str,
        documents: Sequence[str],
        *,
        top_k: Optional[int] = None,
        return_documents: bool = False,
        raw_scores: bool = False,
    ) -> List[Dict[str, Any]]:
        """Scores documents against the query, best first, as ``CrossEncoder.rank`` does:
        ``[{"corpus_id", "score", "text"?}]``. Cross-encoders score each pair (the model's
        activation of its logit, or the logit with ``raw_scores``); bi-encoders compare
        vectors with their query and document prompts; ColBERT models use MaxSim."""
        if not isinstance(query, str):
            raise WgbertValueError("query must be a string")
        docs = _texts(documents, "documents")
        ranked = self._inner.rerank(query, docs, top_k=top_k, raw_scores=raw_scores)
        out = []
        for index, score in ranked:
            item: Dict[str, Any] = {"corpus_id": index, "score": float(score)}
            if return_documents:
                item["text"] = docs[index]
            out.append(item)
        return out

    def predict(
        self,
        inputs: Union[str, Sequence[str], Sequence[Sequence[str]]],
        *,
        raw_scores: bool = False,
    ):
        """Runs the model's classifier.

        - Sequence classifiers: ``[{"label", "score"}]`` per text (``score``: the softmax
          probability of the label); with ``raw_scores``, the logits as a float32 array
          ``[n, labels]``.
        - Token classifiers: per text, ``[{"token_id", "token", "label", "score"}]`` per
          token; with ``raw_scores``, a list of ``[tokens, labels]`` arrays.
        - Cross-encoders: ``inputs`` are (query, document) pairs and the result is a float32
          array of their scores, as ``CrossEncoder.predict`` gives.

        One string (or one pair) gives one result instead of a list."""
        kind = self._info["kind"]
        if kind == "cross-encoder":
            single = (
                isinstance(inputs, (tuple, list))
                and len(inputs) == 2
                and all(isinstance(x, str) for x in inputs)
            )
            pairs = [tuple(inputs)] if single else [tuple(p) for p in inputs]
            for i, p in enumerate(pairs):
                if len(p) != 2 or not all(isinstance(x, str) for x in p):
                    raise WgbertValueError(
                        f"input {i}: a cross-encoder scores (query, document) pairs of strings"
                    )
            scores = np.asarray(
                self._inner.cross_scores(pairs, raw_scores=raw_scores), dtype=np.float32
            )
            return scores[0] if single else scores
        single = isinstance(inputs, str)
        texts = _texts(inputs, "inputs")
        if kind == "token-classifier":
            labels, flat, rows, n = self._inner.token_classify(texts)
            if raw_scores:
                out = _split(flat, rows, n)
            else:
                out = [
                    [
                        {"token_id": tid, "token": tok, "label": label, "score": float(s)}
                        for tid, tok, label, s in per_text
                    ]
                    for per_text in labels
                ]
            return out[0] if single else out
        labels, scores, flat, n = self._inner.classify(texts)
        if raw_scores:
            logits = np.frombuffer(flat, dtype="<f4").astype(np.float32, copy=False)
            logits = logits.reshape(len(texts), n)
            return logits[0] if single else logits
        out = [{"label": label, "score": float(s)} for label, s in zip(labels, scores)]
        return out[0] if single else out

    def fill_mask(
        self, texts: Union[str, Sequence[str]], top_k: int = 5
    ) -> List[Any]:
        """Predicts the tokens behind each ``[MASK]``, as the transformers fill-mask
        pipeline does: per mask, ``[{"score", "token", "token_str", "sequence"}]`` best
        first (``token``: the id; ``sequence``: the text with this mask filled in).

        For one string: a list with one entry per mask. For a list: one such list per
        text. A text without ``[MASK]`` raises :class:`WgbertValueError`."""
        single = isinstance(texts, str)
        items = _texts(texts, "texts")
        got = self._inner.fill_mask(items, top_k)
        out = [
            [
                [
                    {"score": float(score), "token": tid, "token_str": tok, "sequence": seq}
                    for tid, tok, score, seq in cands
                ]
                for cands in masks
            ]
            for masks in got
        ]
        return out[0] if single else out


def __getattr__(name: str):
    # `wgbert.ray` without importing Ray (an optional dependency) at `import wgbert`.
    if name == "ray":
        import importlib

        return importlib.import_module(".ray", __name__)
    raise AttributeError(f"module 'wgbert' has no attribute {name!r}")
