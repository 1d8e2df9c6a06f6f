"""Type stubs of the compiled module (`python/src/lib.rs`); use `wgbert.Encoder`."""

from typing import Any, List, Optional, Sequence, Tuple

__version__: str

def adapters_json(backend: Optional[str] = None) -> str: ...
def embed_sparse(
    encoder: "Encoder",
    texts: Sequence[str],
    *,
    prompt_name: Optional[str] = None,
    prompt: Optional[str] = None,
    top_k: Optional[int] = None,
    batch_size: int = 1024,
    progress: Optional[Any] = None,
) -> Tuple[bytearray, bytearray, bytearray, int]: ...
def id_tokens(encoder: "Encoder", ids: Sequence[int]) -> List[str]: ...
def late_chunks(
    encoder: "Encoder",
    texts: Sequence[str],
    chunks: Sequence[Optional[Sequence[Tuple[int, int]]]],
    *,
    separator: Optional[str] = None,
    chunk_tokens: Optional[int] = None,
    prompt_name: Optional[str] = None,
    prompt: Optional[str] = None,
    normalize: bool = False,
    truncate_dim: Optional[int] = None,
    overlap: Optional[int] = None,
    batch_size: int = 256,
) -> Tuple[bytearray, List[Tuple[int, int, List[Tuple[int, int]], List[int]]], int]: ...
def quantize_embeddings(
    values: bytes,
    width: int,
    precision: str,
    ranges: Optional[Tuple[List[float], List[float]]] = None,
) -> Tuple[bytearray, int]: ...

class Encoder:
    def __init__(
        self,
        model: str,
        *,
        dtype: Optional[str] = None,
        backend: Optional[str] = None,
        adapter: Optional[str] = None,
        offline: bool = False,
        max_tokens: Optional[int] = None,
        truncate: bool = False,
        tokenizer: Optional[str] = None,
        progress: Optional[Any] = None,
        max_binding: Optional[str] = None,
    ) -> None: ...
    @property
    def model(self) -> str: ...
    def info_json(self) -> str: ...
    def role_prompt(self, query: bool) -> Optional[str]: ...
    def has_prompt(self, name: str) -> bool: ...
    def embed(
        self,
        texts: Sequence[str],
        *,
        prompt_name: Optional[str] = None,
        prompt: Optional[str] = None,
        normalize: bool = False,
        truncate_dim: Optional[int] = None,
        per_token: bool = False,
        batch_size: int = 1024,
        progress: Optional[Any] = None,
        precision: str = "float32",
        ranges: Optional[Tuple[List[float], List[float]]] = None,
    ) -> Tuple[bytearray, List[int], int, str]: ...
    def embed_multi(
        self, texts: Sequence[str], *, is_query: bool, batch_size: int = 1024
    ) -> Tuple[bytearray, List[int], int]: ...
    def rerank(
        self,
        query: str,
        documents: Sequence[str],
        *,
        top_k: Optional[int] = None,
        raw_scores: bool = False,
    ) -> List[Tuple[int, float]]: ...
    def cross_scores(
        self, pairs: Sequence[Tuple[str, str]], *, raw_scores: bool = False
    ) -> List[float]: ...
    def fill_mask(
        self, texts: Sequence[str], top_k: int = 5
    ) -> List[List[List[Tuple[int, str, float, str]]]]: ...
    def classify(
        self, texts: Sequence[str]
    ) -> Tuple[List[str], List[float], bytearray, int]: ...
    def classify_pairs(
        self, pairs: Sequence[Tuple[str, str]]
    ) -> Tuple[List[str], List[float], bytearray, int]: ...
    def token_classify(
        self, texts: Sequence[str]
    ) -> Tuple[List[List[Tuple[int, str, str, float]]], bytearray, List[int], int]: ...
