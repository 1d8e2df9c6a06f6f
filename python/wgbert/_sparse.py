"""Sparse (SPLADE) encoders with sentence-transformers' ``SparseEncoder`` names; vectors are
``scipy.sparse.csr_matrix`` (scipy is needed for them, and only for them)."""

from __future__ import annotations

from typing import Any, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import Encoder, _texts, _wgbert
from .exceptions import WgbertValueError


def _scipy_sparse():
    try:
        import scipy.sparse
    except ImportError as e:
        raise ImportError(
            "wgbert.SparseEncoder returns scipy.sparse.csr_matrix: install scipy "
            "(pip install scipy)"
        ) from e
    return scipy.sparse


def _rows(embeddings: Any) -> Tuple[List[Tuple[np.ndarray, np.ndarray]], bool]:
    """(column indices, values) of each row of a scipy sparse matrix or a dense array, and
    whether the input was one dense vector."""
    if hasattr(embeddings, "tocsr"):
        m = embeddings.tocsr()
        m.sum_duplicates()
        return [
            (m.indices[m.indptr[i] : m.indptr[i + 1]], m.data[m.indptr[i] : m.indptr[i + 1]])
            for i in range(m.shape[0])
        ], False
    a = np.asarray(embeddings, dtype=np.float32)
    single = a.ndim == 1
    if single:
        a = a.reshape(1, -1)
    if a.ndim != 2:
        raise WgbertValueError(f"embeddings must be 1-D or 2-D, got {a.ndim}-D")
    out = []
    for r in a:
        idx = np.nonzero(r)[0]
        out.append((idx, r[idx]))
    return out, single


def _matrix(x: Any):
    if hasattr(x, "tocsr"):
        return x.tocsr().astype(np.float32)
    a = np.asarray(x, dtype=np.float32)
    return a.reshape(1, -1) if a.ndim == 1 else a


def _row_norms(m) -> np.ndarray:
    sq = m.multiply(m).sum(axis=1) if hasattr(m, "multiply") else (m * m).sum(axis=1)
    return np.sqrt(np.asarray(sq, dtype=np.float64).reshape(-1))


class SparseEncoder(Encoder):
    """A sparse (SPLADE) encoder: sentence-transformers' ``SparseEncoder`` layout (an MLM
    transformer and SpladePooling), loaded as :class:`wgbert.Encoder` loads models (the same
    arguments). Any other kind of model is a :class:`WgbertValueError`.

    ``encode`` / ``encode_query`` / ``encode_document`` return a float32
    ``scipy.sparse.csr_matrix`` ``[n, vocab]``, one row per text (also for one string);
    ``decode`` turns rows into (token, weight) pairs, ``similarity`` scores them with the
    model's similarity (dot unless it names cosine), ``rank`` ranks documents."""

    def __init__(self, model: Any, **kwargs: Any) -> None:
        super().__init__(model, **kwargs)
        kind = self._info["kind"]
        if kind != "sparse":
            raise WgbertValueError(
                f"{self._info['model']}: a {kind} model, not a sparse (SPLADE) encoder "
                "(modules.json with an MLM transformer and SpladePooling)"
            )

    def encode(  # type: ignore[override]
        self,
        sentences: Union[str, Sequence[str]],
        *,
        prompt_name: Optional[str] = None,
        prompt: Optional[str] = None,
        max_active_dims: Optional[int] = None,
        batch_size: Optional[int] = None,
        show_progress_bar: bool = False,
    ):
        """Sparse vectors of texts as ``SparseEncoder.encode`` computes them.

        :param prompt_name, prompt: as :meth:`wgbert.Encoder.encode`.
        :param max_active_dims: keep each vector's largest values, this many.
        :returns: a float32 ``scipy.sparse.csr_matrix`` ``[n, vocab]``."""
        sparse = _scipy_sparse()
        from ._progress import Bar

        texts = _texts(sentences)
        indptr, indices, data, vocab = _wgbert.embed_sparse(
            self._inner,
            texts,
            prompt_name=prompt_name,
            prompt=prompt,
            top_k=max_active_dims,
            batch_size=1024 if batch_size is None else batch_size,
            progress=Bar("encoding") if show_progress_bar else None,
        )
        return sparse.csr_matrix(
            (
                np.frombuffer(data, dtype="<f4"),
                np.frombuffer(indices, dtype="<i4"),
                np.frombuffer(indptr, dtype="<i8"),
            ),
            shape=(len(texts), vocab),
            dtype=np.float32,
        )

    def decode(
        self, embeddings: Any, top_k: Optional[int] = None
    ) -> Union[List[Tuple[str, float]], List[List[Tuple[str, float]]]]:
        """(token, weight) pairs of each row, largest weight first (ties by token id), as
        ``SparseEncoder.decode``: a list per row of a matrix, one list for a 1-D vector.

        :param embeddings: a scipy sparse matrix (``encode``'s result, or rows of it) or a
            dense array ``[vocab]`` / ``[n, vocab]``.
        :param top_k: keep this many per row (default: every non-zero)."""
        if top_k is not None and (not isinstance(top_k, int) or top_k <= 0):
            raise WgbertValueError(f"top_k must be a positive integer, got {top_k!r}")
        rows, single = _rows(embeddings)
        out = []
        for idx, val in rows:
            order = sorted(range(len(idx)), key=lambda k: (-float(val[k]), int(idx[k])))
            if top_k is not None:
                order = order[:top_k]
            tokens = _wgbert.id_tokens(self._inner, [int(idx[k]) for k in order])
            out.append([(t, float(val[k])) for t, k in zip(tokens, order)])
        return out[0] if single else out

    def similarity(self, embeddings1: Any, embeddings2: Any) -> np.ndarray:
        """Scores of every row of ``embeddings1`` against every row of ``embeddings2``
        (``[n, m]`` float32) with the model's similarity: dot product (the default of
        sparse encoders) or cosine."""
        name = self._info.get("similarity") or "dot"
        a, b = _matrix(embeddings1), _matrix(embeddings2)
        scores = a @ b.T
        scores = np.asarray(scores.toarray() if hasattr(scores, "toarray") else scores)
        if name == "cosine":
            na, nb = _row_norms(a), _row_norms(b)
            scores = scores / np.maximum(np.outer(na, nb), 1e-12)
        elif name != "dot":
            raise WgbertValueError(
                f"similarity {name!r} is not supported for sparse vectors (dot, cosine)"
            )
        return scores.astype(np.float32)
