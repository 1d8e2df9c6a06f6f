"""wgbert: ModernBERT inference on any GPU (Vulkan, Metal, DX12), from Python.

The API follows sentence-transformers' names where a counterpart exists::

    import wgbert

    model = wgbert.Encoder("nomic-ai/modernbert-embed-base")
    queries = model.encode_query(["what is the capital of france?"])
    docs = model.encode_document(["Paris is the capital of France.", "Berlin is in Germany."])
    scores = queries @ docs.T

One class loads any ModernBERT checkpoint the ``wgbert`` command line loads (plain,
sentence-transformers and PyLate layouts, with their prompts and heads) and serves what its
heads can do: ``encode`` (bi-encoders; ``precision`` for quantized vectors),
``encode_late_chunks`` (late chunking), ``rank`` (cross-encoders, bi-encoders, ColBERT,
sparse), ``encode_multi`` (ColBERT), ``fill_mask`` (masked-LM heads) and ``predict``
(classifiers). :class:`SparseEncoder` gives sparse (SPLADE) models' vectors as
``scipy.sparse.csr_matrix``; :func:`quantize_embeddings` quantizes any float embeddings as
sentence-transformers does.

The GIL is released while texts are tokenized and run on the GPU, so one ``Encoder`` may be
shared by several threads; ``encode`` checks for Ctrl-C between batches. Errors are the
exceptions of :mod:`wgbert.exceptions`, all under :class:`WgbertError`.
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import _wgbert
from ._progress import Bar
from .exceptions import DeviceError, WgbertError, WgbertFileNotFoundError, WgbertValueError

__version__ = _wgbert.__version__

__all__ = [
    "Encoder",
    "SparseEncoder",
    "adapters",
    "quantize_embeddings",
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


def _is_pair(x: Any) -> bool:
    return isinstance(x, (tuple, list)) and len(x) == 2 and all(isinstance(s, str) for s in x)


def _pairs(inputs: Any) -> Optional[Tuple[bool, List[Tuple[str, str]]]]:
    """(single, pairs) when ``inputs`` is a (text, text) tuple or a list of such pairs;
    None for texts."""
    if isinstance(inputs, tuple) and _is_pair(inputs):
        return True, [(inputs[0], inputs[1])]
    if isinstance(inputs, (str, bytes)) or not isinstance(inputs, (list, tuple)):
        return None
    if inputs and all(_is_pair(x) for x in inputs):
        return False, [(x[0], x[1]) for x in inputs]
    for i, x in enumerate(inputs):
        if isinstance(x, (tuple, list)) and not _is_pair(x):
            raise WgbertValueError(f"input {i}: a pair is two strings (text, text_pair)")
    if any(isinstance(x, (tuple, list)) for x in inputs):
        raise WgbertValueError("inputs are all texts or all (text, text_pair) pairs, not both")
    return None


_DTYPES = {"float32": "<f4", "int8": "i1", "uint8": "u1"}


def _ranges(ranges: Any) -> Optional[tuple]:
    """Calibration ranges as sentence-transformers gives them, a ``(2, dim)`` array (minimum
    row, maximum row), as the two rows the compiled module takes."""
    if ranges is None:
        return None
    r = np.asarray(ranges, dtype=np.float32)
    if r.ndim != 2 or r.shape[0] != 2:
        raise WgbertValueError(f"ranges must have shape (2, dim), got {r.shape}")
    return (r[0].tolist(), r[1].tolist())


def quantize_embeddings(
    embeddings: Any, precision: str, ranges: Optional[Any] = None
) -> np.ndarray:
    """Quantizes float embeddings as sentence-transformers' ``quantize_embeddings`` does:
    ``int8`` / ``uint8`` map each dimension's range (``ranges``, a ``(2, dim)`` array of
    minimum and maximum, else those of ``embeddings``, which then needs at least two rows)
    onto 256 buckets; ``binary`` / ``ubinary`` pack the sign bits, 8 dimensions to a byte
    (``np.packbits``; ``binary`` minus 128 as int8). ``float32`` returns a float32 copy.

    :param embeddings: a ``[n, dim]`` (or ``[dim]``) float array.
    :returns: ``[n, dim]`` int8 / uint8 (``[n, ceil(dim / 8)]`` for the binary ones)."""
    arr = np.ascontiguousarray(embeddings, dtype="<f4")
    single = arr.ndim == 1
    if single:
        arr = arr.reshape(1, -1)
    if arr.ndim != 2 or arr.shape[1] == 0:
        raise WgbertValueError(f"embeddings must be a [n, dim] array, got shape {arr.shape}")
    if precision == "float32":
        out = arr.astype(np.float32, copy=True)
    else:
        flat, width = _wgbert.quantize_embeddings(
            arr.tobytes(), arr.shape[1], precision, _ranges(ranges)
        )
        dtype = "i1" if precision in ("int8", "binary") else "u1"
        out = np.frombuffer(flat, dtype=dtype).reshape(arr.shape[0], width)
    return out[0] if single else out


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
        precision: str = "float32",
        ranges: Optional[Any] = None,
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
        :param precision: ``"float32"``, or quantized as sentence-transformers' ``precision``:
            ``"int8"``, ``"uint8"`` (each dimension's range in 256 buckets), ``"binary"``,
            ``"ubinary"`` (sign bits, 8 dimensions to a byte). See
            :func:`quantize_embeddings`.
        :param ranges: int8 / uint8 calibration ranges, a ``(2, d)`` array of minimum and
            maximum; default: those of the embeddings of this call (at least two texts).
        :returns: a float32 array ``[n, d]`` (``[d]`` for one string; int8 or uint8 with a
            ``precision``); with
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
        flat, rows, width, dtype = self._inner.embed(
            texts,
            prompt_name=prompt_name,
            prompt=prompt,
            normalize=bool(normalize_embeddings),
            truncate_dim=truncate_dim,
            per_token=per_token,
            batch_size=_DEFAULT_CHUNK if batch_size is None else batch_size,
            progress=Bar("encoding") if show_progress_bar else None,
            precision=precision,
            ranges=_ranges(ranges),
        )
        if per_token:
            arrays = _split(flat, rows, width)
            return arrays[0] if single else arrays
        # The bytearray the values were written into becomes the array's memory (no copy).
        matrix = np.frombuffer(flat, dtype=_DTYPES[dtype]).reshape(len(texts), width)
        return matrix[0] if single else matrix

    def encode_late_chunks(
        self,
        documents: Union[str, Sequence[str]],
        chunks: Optional[Sequence[Optional[Sequence[Sequence[int]]]]] = None,
        *,
        separator: Optional[str] = None,
        chunk_tokens: Optional[int] = None,
        prompt_name: Optional[str] = None,
        prompt: Optional[str] = None,
        normalize_embeddings: Optional[bool] = None,
        truncate_dim: Optional[int] = None,
        overlap: Optional[int] = None,
        batch_size: Optional[int] = None,
    ) -> Union[Dict[str, Any], List[Dict[str, Any]]]:
        """Late chunking: each document is encoded once and each of its chunks is embedded
        from the document's final hidden states (the mean over the chunk's tokens, then the
        model's Dense and Normalize), so chunk vectors carry the document's context.

        :param documents: a string or a list of strings.
        :param chunks: per document, its chunks as ``(start, end)`` character spans (Unicode
            code points, end exclusive), or ``None`` to use ``separator`` / ``chunk_tokens``.
            For one string, its list of spans.
        :param separator: cut documents after every occurrence of this text.
        :param chunk_tokens: chunks of this many tokens.
        :param prompt_name, prompt, normalize_embeddings, truncate_dim: as ``encode``.
        :param overlap: tokens shared by consecutive windows of a document longer than the
            model's limit (default 256, at most half a window).
        :param batch_size: documents per chunk of work (Ctrl-C is looked at between them).
        :returns: per document ``{"spans": [(start, end)], "embeddings": float32 [chunks, d],
            "chunk_tokens": [tokens per chunk], "n_tokens", "windows"}`` (one dict for one
            string). A token belongs to the chunk that holds its first character; special
            and prompt tokens to none; a given span that holds no token is an error."""
        single = isinstance(documents, str)
        texts = _texts(documents, "documents")
        if chunks is None:
            per_doc: List[Any] = [None] * len(texts)
        else:
            per_doc = [chunks] if single else list(chunks)
        if len(per_doc) != len(texts):
            raise WgbertValueError(
                f"{len(per_doc)} chunk lists for {len(texts)} documents (one each, or None)"
            )
        spans = [
            None if c is None else [(int(s), int(e)) for s, e in c] for c in per_doc
        ]
        flat, docs, width = _wgbert.late_chunks(
            self._inner,
            texts,
            spans,
            separator=separator,
            chunk_tokens=chunk_tokens,
            prompt_name=prompt_name,
            prompt=prompt,
            normalize=bool(normalize_embeddings),
            truncate_dim=truncate_dim,
            overlap=overlap,
            batch_size=256 if batch_size is None else batch_size,
        )
        arrays = _split(flat, [len(d[2]) for d in docs], width)
        out = [
            {"spans": spans_, "embeddings": arr, "chunk_tokens": counts, "n_tokens": n,
             "windows": w}
            for (n, w, spans_, counts), arr in zip(docs, arrays)
        ]
        return out[0] if single else out

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
        - Sequence classifiers also take (text, text) pairs, ``[CLS] a [SEP] b [SEP]``, as
          pair classifiers (natural language inference, paraphrase) were trained: a tuple
          of two strings, or a list of such pairs.

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
        pairs = _pairs(inputs) if kind == "classifier" else None
        if pairs is not None:
            single, items = pairs
            labels, scores, flat, n = self._inner.classify_pairs(items)
            return self._classified(labels, scores, flat, n, len(items), single, raw_scores)
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
        return self._classified(labels, scores, flat, n, len(texts), single, raw_scores)

    @staticmethod
    def _classified(labels, scores, flat, n, count, single, raw_scores):
        if raw_scores:
            logits = np.frombuffer(flat, dtype="<f4").astype(np.float32, copy=False)
            logits = logits.reshape(count, n)
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


from ._sparse import SparseEncoder  # noqa: E402


def __getattr__(name: str):
    # `wgbert.ray` without importing Ray (an optional dependency) at `import wgbert`.
    if name == "ray":
        import importlib

        return importlib.import_module(".ray", __name__)
    raise AttributeError(f"module 'wgbert' has no attribute {name!r}")
