#!/usr/bin/env python3
"""Reference outputs for late chunking, quantized embeddings and multi-vector token pooling,
for wgbert's tests (tests/retrieval.rs, python/tests/test_retrieval.py).

Run by hand, never at test time (needs torch, transformers, sentence-transformers >= 6.3,
numpy and scipy):

    python3 scripts/make_retrieval_fixtures.py late       # tests/fixtures/late_chunking/
    python3 scripts/make_retrieval_fixtures.py quantize   # tests/fixtures/quantize/
    python3 scripts/make_retrieval_fixtures.py tokenpool  # tests/fixtures/mve_pooled/
    ... --out DIR                                         # somewhere else than tests/fixtures/

late_chunking  Chunk vectors of documents embedded once with the st_mean_dense fixture model
               (word-level tokenizer, max_seq_length 64): transformers' final hidden states
               of "prompt + document" (sdpa, float32), the mean over each chunk's tokens (a
               token belongs to the chunk that holds its first character in the document;
               special tokens and those that end inside the prompt to none), then the
               model's own Dense and Normalize modules. Chunks are
               given as character spans, as a separator or as a token budget; documents over
               64 tokens run in overlapping windows by the rule README states (each window
               [CLS] + prompt + up to 64 - 2 - prompt document tokens + [SEP], consecutive
               windows sharing `overlap` tokens, a shared token's state from the earlier
               window in the first half of the shared stretch, else from the later one).
quantize       sentence-transformers' quantize_embeddings of the st_mean_dense embeddings of
               six texts: int8/uint8 with ranges computed from them and with given ranges
               (ranges.npy, computed from the first three texts only, so that values clip),
               binary and ubinary.
mve_pooled     a MultiVectorEncoder saved with a HierarchicalTokenPooling module
               (pool_factor 2, documents only) after Normalize, and what it returns for long
               documents; plus the same model's outputs with other pooling settings (max_tokens,
               distance_threshold, a fractional pool_factor on queries too, no output
               normalization), each given as the module config that produced it.
"""

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_fixtures import rounded  # noqa: E402
from make_st_fixtures import QUERY, TEXTS, backbone, tidy, versions, write_expected  # noqa: E402

HERE = Path(__file__).resolve().parent.parent / "tests" / "fixtures"


def vec(x):
    return rounded(torch.as_tensor(x).tolist())


# ---------------------------------------------------------------- late chunking

LATE_DOCS = [
    "the cat ran on the old tree . paris is the capital of france .",
    "café and code in paris , the city by the river ; a fast gpu runs rust .",
    # Over 64 tokens: windows.
    " ".join(["the red bird sat in the green tree by the river .",
              "a small dog ran to the old city and the fish swam in the river .",
              "rust code runs fast on the gpu , the shader eats the vector .",
              "what is the capital of france ? paris is the capital .",
              "the blue fish and the big dog eat in the new city .",
              "the old model was slow and the new model is fast ."]),
]


def span_of(text, piece, nth=0):
    start = -1
    for _ in range(nth + 1):
        start = text.index(piece, start + 1)
    return [start, start + len(piece)]


def late_fixtures(out_root):
    import sentence_transformers
    from sentence_transformers import SentenceTransformer

    model_dir = HERE / "st_mean_dense"
    st = SentenceTransformer(str(model_dir), device="cpu",
                             model_kwargs={"attn_implementation": "sdpa"})
    hf = st[0].auto_model.eval()
    tok = st.tokenizer
    limit = st.max_seq_length

    def states_of(ids):
        with torch.no_grad():
            return hf(input_ids=torch.tensor([ids])).last_hidden_state[0]

    def reference(text, chunking, prompt, overlap):
        full = prompt + text
        enc = tok(full, return_offsets_mapping=True, return_special_tokens_mask=True,
                  truncation=False)
        ids, offs, special = enc["input_ids"], enc["offset_mapping"], enc["special_tokens_mask"]
        n, p = len(ids), len(prompt)
        head = 0
        while head < n and (special[head] or (p > 0 and offs[head][1] <= p)):
            head += 1
        tail = 0
        while tail < n - head and special[n - 1 - tail]:
            tail += 1
        starts = [None if (i < head or i >= n - tail or special[i]) else max(offs[i][0] - p, 0)
                  for i in range(n)]
        if n <= limit:
            windows, owner = [ids], [(0, i) for i in range(n)]
        else:
            room = limit - head - tail
            ov = min(256, room // 2) if overlap is None else overlap
            body = ids[head:n - tail]
            ws = [0]
            while ws[-1] + room < len(body):
                ws.append(ws[-1] + room - ov)
            windows = [ids[:head] + body[s:s + room] + ids[n - tail:] for s in ws]
            owner, k = [(0, i) for i in range(head)], 0
            for i in range(len(body)):
                while k + 1 < len(ws) and i >= ws[k + 1] + ov // 2:
                    k += 1
                owner.append((k, head + i - ws[k]))
            owner += [(0, 0)] * tail
        states = [states_of(w) for w in windows]
        chars = len(text)
        kind, arg = chunking
        if kind == "spans":
            spans = arg
        elif kind == "separator":
            spans, s = [], 0
            for piece in text.split(arg):
                e = min(s + len(piece) + len(arg), chars)
                spans.append([s, e])
                s = e
            spans = [sp for sp in spans if sp[0] < sp[1]]
        else:
            toks = [i for i in range(n) if starts[i] is not None]
            runs = [toks[i:i + arg] for i in range(0, len(toks), arg)]
            spans = [[0 if r == 0 else starts[runs[r][0]],
                      chars if r + 1 == len(runs) else starts[runs[r + 1][0]]]
                     for r in range(len(runs))]
        chunks = []
        for s, e in spans:
            members = [i for i in range(n) if starts[i] is not None and s <= starts[i] < e]
            if not members:
                continue
            mean = torch.stack([states[owner[i][0]][owner[i][1]] for i in members]).mean(0)
            features = {"sentence_embedding": mean[None]}
            with torch.no_grad():
                for module in list(st)[2:]:
                    features = module(features)
            chunks.append({"span": [s, e], "n_tokens": len(members),
                           "embedding": vec(features["sentence_embedding"][0])})
        return {"n_tokens": n, "windows": len(windows), "chunks": chunks}

    d0, d1 = LATE_DOCS[0], LATE_DOCS[1]
    cases = [
        {"doc": 0, "prompt_name": None, "overlap": None,
         "chunking": {"spans": [span_of(d0, "the cat ran on the old tree ."),
                                span_of(d0, "paris is the capital of france ."),
                                [0, len(d0)]]}},
        {"doc": 1, "prompt_name": "document", "overlap": None,
         "chunking": {"spans": [[0, d1.index(",")], [d1.index(","), len(d1)]]}},
        {"doc": 1, "prompt_name": None, "overlap": None, "chunking": {"separator": ","}},
        {"doc": 2, "prompt_name": "document", "overlap": None, "chunking": {"separator": "."}},
        {"doc": 2, "prompt_name": None, "overlap": 8, "chunking": {"tokens": 12}},
    ]
    prompts = st.prompts
    for case in cases:
        (kind, arg), = case["chunking"].items()
        prompt = prompts[case["prompt_name"]] if case["prompt_name"] else ""
        case.update(reference(LATE_DOCS[case["doc"]], (kind, arg), prompt, case["overlap"]))
    directory = out_root / "late_chunking"
    directory.mkdir(parents=True, exist_ok=True)
    write_expected(directory, {
        "fixture": "late_chunking", "model": "st_mean_dense",
        "versions": versions(sentence_transformers), "max_seq_length": limit,
        "documents": LATE_DOCS, "cases": cases,
    })


# ---------------------------------------------------------------- quantized embeddings

def quantize_fixtures(out_root):
    import sentence_transformers
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.util.quantization import quantize_embeddings

    st = SentenceTransformer(str(HERE / "st_mean_dense"), device="cpu",
                             model_kwargs={"attn_implementation": "sdpa"})
    emb = st.encode(TEXTS, batch_size=1, convert_to_numpy=True).astype(np.float32)
    given = np.vstack((emb[:3].min(0), emb[:3].max(0))).astype(np.float32)
    directory = out_root / "quantize"
    directory.mkdir(parents=True, exist_ok=True)
    np.save(directory / "ranges.npy", given)
    cases = []
    for precision in ["int8", "uint8", "binary", "ubinary"]:
        q = quantize_embeddings(emb, precision=precision)
        cases.append({"precision": precision, "ranges": None, "values": q.astype(int).tolist()})
    for precision in ["int8", "uint8"]:
        q = quantize_embeddings(emb, precision=precision, ranges=given)
        cases.append({"precision": precision, "ranges": "ranges.npy",
                      "values": q.astype(int).tolist()})
    write_expected(directory, {
        "fixture": "quantize", "model": "st_mean_dense",
        "versions": versions(sentence_transformers), "texts": TEXTS,
        # Exact float32 values (as float64), so the quantizer can be checked bit for bit.
        "embeddings": emb.astype(np.float64).tolist(),
        "computed_ranges": np.vstack((emb.min(0), emb.max(0))).astype(np.float64).tolist(),
        "cases": cases,
    })


# ---------------------------------------------------------------- token pooling

POOL_DOCS = [
    "paris is the capital of france and the capital city of france is paris by the river",
    "the red bird and the blue bird sat in the green tree by the old river in the city",
    "rust code runs fast on the gpu , the shader eats the vector and the model runs",
    "fish",
]
VARIANTS = [
    {"max_tokens": 4, "num_protected_tokens": 1, "normalize_embeddings": True},
    {"distance_threshold": 0.6, "num_protected_tokens": 1, "normalize_embeddings": True},
    {"pool_factor": 1.5, "num_protected_tokens": 2, "normalize_embeddings": True,
     "tasks": ["query", "document"]},
    {"pool_factor": 3, "num_protected_tokens": 0, "normalize_embeddings": False},
]


def tokenpool_fixtures(out_root):
    import sentence_transformers
    from sentence_transformers import MultiVectorEncoder
    from sentence_transformers.base.modules import Dense, Normalize, Transformer
    from sentence_transformers.multi_vector_encoder.modules import (
        HierarchicalTokenPooling, MultiVectorMask)

    name = "mve_pooled"
    directory = out_root / name
    shutil.rmtree(directory, ignore_errors=True)
    with tempfile.TemporaryDirectory() as tmp:
        backbone(Path(tmp), __import__("transformers").ModernBertModel, 3031)
        torch.manual_seed(3032)
        dense = Dense(32, 16, bias=False, activation_function=torch.nn.Identity(),
                      module_input_name="token_embeddings")
        with torch.no_grad():
            dense.linear.weight.normal_(0.0, 0.5)
        modules = [Transformer(tmp, document_length=32,
                               query_expansion={"strategy": "fixed", "attend": False, "length": 12},
                               model_kwargs={"attn_implementation": "sdpa"}),
                   dense, MultiVectorMask(skiplist_words=[".", ","]),
                   Normalize(module_input_name="token_embeddings"),
                   HierarchicalTokenPooling(pool_factor=2)]
        model = MultiVectorEncoder(modules=modules, device="cpu",
                                   prompts={"query": "query : ", "document": "document : "})
        model.save(str(directory), create_model_card=False)
    tidy(directory)

    def outputs(model):
        q = model.encode_query([QUERY, "fish"], batch_size=1)
        d = model.encode_document(POOL_DOCS, batch_size=1)
        return ([vec(x) for x in q], [vec(x) for x in d])

    model = MultiVectorEncoder(str(directory), device="cpu",
                               model_kwargs={"attn_implementation": "sdpa"})
    assert isinstance(model[4], HierarchicalTokenPooling) and model[4].pool_factor == 2
    q, d = outputs(model)
    variants = []
    for cfg in VARIANTS:
        model._modules["4"] = HierarchicalTokenPooling(**cfg)
        vq, vd = outputs(model)
        variants.append({"config": cfg, "query_embeddings": vq, "document_embeddings": vd})
    write_expected(directory, {
        "fixture": name, "versions": versions(sentence_transformers),
        "queries": [QUERY, "fish"], "query_embeddings": q,
        "documents": POOL_DOCS, "document_embeddings": d, "variants": variants,
    })


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("which", choices=["late", "quantize", "tokenpool"])
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    {"late": late_fixtures, "quantize": quantize_fixtures,
     "tokenpool": tokenpool_fixtures}[args.which](args.out)


if __name__ == "__main__":
    main()
