#!/usr/bin/env python3
"""Write tiny retrieval models in the sentence-transformers and PyLate layouts, with the outputs
those libraries compute for them, for wgbert's tests (tests/sentence.rs, tests/rerank_cli.rs).

Run by hand, never at test time. PyLate pins its own sentence-transformers/transformers, so the
ColBERT fixture is written from a second environment:

    python3 scripts/make_st_fixtures.py st        # needs torch + sentence-transformers
    python3 scripts/make_st_fixtures.py colbert   # needs torch + pylate
    python3 scripts/make_st_fixtures.py sparse    # needs torch + sentence-transformers >= 6.3
    python3 scripts/make_st_fixtures.py multivector   # the same
    python3 scripts/make_st_fixtures.py truncation    # after st: st_mean_noprompt/truncation.json
    ... --out DIR                                  # somewhere else than tests/fixtures/

Every model is a random-weight ModernBERT (hidden 32, 3 layers, global and local layers) with a
small word-level tokenizer built here (`[PAD] [CLS] [SEP] [MASK] [UNK]`, a few words and
punctuation, framed `[CLS] A [SEP]` / `[CLS] A [SEP] B [SEP]` like ModernBERT's). The libraries
save the models themselves; expected.json records what they return (float32, sdpa attention,
one text per batch) and the library versions:

    st_mean_dense     mean pooling + Dense(Tanh) + Normalize, query/document prompts,
                      current `pooling_mode` config; cases with truncate_dim and a literal prompt
    st_cls_oldkeys    CLS pooling, no Normalize, the older boolean Pooling keys, cosine
    st_mean_noprompt  mean pooling with include_prompt false, default_prompt_name "query"
    cross_encoder     a one-label CrossEncoder (ModernBertForSequenceClassification)
    colbert           a PyLate ColBERT: [Q]/[D] prefixes, [MASK] expansion to query_length
                      (attended), document_length, a skiplist, Dense projection to 16
    colbert_masked    the same with attend_to_expansion_tokens false (PyLate's default): the
                      expansion tokens are keys of no attention, though they are queries
    mve_native        a MultiVectorEncoder in sentence-transformers' own layout: Transformer with
                      document_length and query_expansion (fixed, not attended), Dense without
                      bias, MultiVectorMask with a skiplist, Normalize; "query : " /
                      "document : " prompts as plain text. No PyLate re-save: PyLate 1.6
                      pins sentence-transformers 5.3.0, which has none of the
                      multi_vector_encoder module classes this modules.json names.
    splade_max        a SparseEncoder: Transformer (transformer_task fill-mask) + SpladePooling
                      max/relu, query/document prompts, dot similarity
    splade_sum        SpladePooling sum/log1p_relu in the older layout: the 5.x module name
                      sparse_encoder.models.MLMTransformer, word_embedding_dimension

truncation.json (in st_mean_noprompt, whose pooling leaves the prompt out) records prompted
long texts cut to max_seq_length 12 from either side: the tokens sentence-transformers fed its
model and its vectors, and, for the left side, the vectors of the prompt and the text's end
that fit (what wgbert keeps: the prompt whole, only the text cut), as sentence-transformers
computes them without cutting.

The SPLADE models are sparse as trained ones are: the MLM head's logits are scaled and shifted
down so that a fraction of the vocabulary lights up per text, and each vocabulary column's
bias is nudged so that no logit of any test text lies within 0.05 of zero (a term is then in
or out of a vector by a margin that f16 rounding cannot cross).
"""

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import (
    ModernBertConfig,
    ModernBertForMaskedLM,
    ModernBertForSequenceClassification,
    ModernBertModel,
    PreTrainedTokenizerFast,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_fixtures import randomize, rounded  # noqa: E402

SPECIALS = ["[PAD]", "[CLS]", "[SEP]", "[MASK]", "[UNK]"]
WORDS = ("the a of and to in is was for on with as by at from it that this are be "
         "search_query search_document query document passage cat dog bird fish tree river "
         "city paris france capital rust code gpu shader vector model text search rerank "
         "fast slow red blue green small big old new good bad run runs ran eat eats sleep "
         "what where who how why when").split()
PUNCT = [".", ",", "?", "!", ":", ";", "(", ")", "-"]

TEXTS = [
    "the cat sat on the mat .",          # "sat", "mat" are [UNK]
    "what is the capital of france ?",
    "paris is the capital of france",
    "rust code runs on the gpu , fast !",
    "a small dog ran in the old city",
    "fish",
]
QUERY = "what is the capital of france ?"
DOCS = TEXTS[2:] + ["the capital of france is paris .", "green tree by the river"]


def tokenizer_files(directory):
    vocab = {t: i for i, t in enumerate(SPECIALS + WORDS + PUNCT)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", 1), ("[SEP]", 2)])
    tok.add_special_tokens(SPECIALS)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]",
        mask_token="[MASK]", unk_token="[UNK]", model_max_length=512)
    fast.save_pretrained(directory)
    return len(vocab)


def backbone(directory, cls, seed, **extra):
    """A random tiny ModernBERT with the test tokenizer, saved by transformers."""
    vocab = tokenizer_files(directory)
    config = ModernBertConfig(
        vocab_size=vocab, hidden_size=32, num_attention_heads=2, intermediate_size=48,
        num_hidden_layers=3, local_attention=8, max_position_embeddings=512,
        pad_token_id=0, cls_token_id=1, sep_token_id=2, bos_token_id=1, eos_token_id=2,
        **extra)
    torch.manual_seed(seed)
    model = cls(config).eval()
    randomize(model, seed)
    model.save_pretrained(directory, safe_serialization=True)


def tidy(directory):
    for p in sorted(directory.rglob("*"), reverse=True):
        if p.name in ("README.md", "generation_config.json"):
            p.unlink()
        elif p.is_file():
            p.chmod(0o644)


def write_expected(directory, expected):
    with open(directory / "expected.json", "w") as f:
        json.dump(expected, f, indent=1)
        f.write("\n")
    size = sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())
    print(f"{directory.name}: {size / 1024:.0f} KiB")


def vec(x):
    return rounded(x.tolist())


def versions(*mods):
    out = {"torch": torch.__version__}
    for m in mods:
        out[m.__name__] = m.__version__
    import transformers
    out["transformers"] = transformers.__version__
    return out


# ---------------------------------------------------------------- sentence-transformers

def st_fixtures(out_root):
    import sentence_transformers
    from sentence_transformers import CrossEncoder, SentenceTransformer
    from sentence_transformers.models import Dense, Normalize, Pooling, Transformer

    def bi_encoder(name, seed, pooling, dense, normalize, prompts, default_prompt, similarity,
                   cases, old_keys=False):
        directory = out_root / name
        shutil.rmtree(directory, ignore_errors=True)
        with tempfile.TemporaryDirectory() as tmp:
            backbone(Path(tmp), ModernBertModel, seed)
            modules = [Transformer(tmp, max_seq_length=64,
                                   model_args={"attn_implementation": "sdpa"}), pooling]
            if dense:
                torch.manual_seed(seed + 1)
                d = Dense(32, 16, bias=True, activation_function=torch.nn.Tanh())
                with torch.no_grad():
                    d.linear.weight.normal_(0.0, 0.5)
                    d.linear.bias.normal_(0.0, 0.2)
                modules.append(d)
            if normalize:
                modules.append(Normalize())
            model = SentenceTransformer(modules=modules, prompts=prompts,
                                        default_prompt_name=default_prompt,
                                        similarity_fn_name=similarity, device="cpu")
            model.save(str(directory), create_model_card=False)
        if old_keys:
            pool_cfg = directory / "1_Pooling" / "config.json"
            cfg = json.loads(pool_cfg.read_text())
            mode = cfg.pop("pooling_mode")
            dim = cfg.pop("embedding_dimension", cfg.pop("word_embedding_dimension", 32))
            old = {"word_embedding_dimension": dim}
            for key, m in [("cls_token", "cls"), ("mean_tokens", "mean"), ("max_tokens", "max"),
                           ("mean_sqrt_len_tokens", "mean_sqrt_len_tokens"),
                           ("weightedmean_tokens", "weightedmean"), ("lasttoken", "lasttoken")]:
                old["pooling_mode_" + key] = (m == mode)
            old.update(cfg)
            pool_cfg.write_text(json.dumps(old, indent=2) + "\n")
        tidy(directory)
        model = SentenceTransformer(str(directory), device="cpu",
                                    model_kwargs={"attn_implementation": "sdpa"})
        results = []
        for case in cases:
            kw = {k: v for k, v in case.items() if v is not None}
            emb = model.encode(TEXTS, batch_size=1, convert_to_tensor=True, **kw)
            results.append({**case, "embeddings": vec(emb)})
        q = model.encode([QUERY], prompt_name="query" if "query" in (prompts or {}) else None,
                         batch_size=1, convert_to_tensor=True)
        d = model.encode(DOCS, prompt_name="document" if "document" in (prompts or {}) else None,
                         batch_size=1, convert_to_tensor=True)
        scores = model.similarity(q, d)[0]
        write_expected(directory, {
            "fixture": name, "versions": versions(sentence_transformers), "texts": TEXTS,
            "cases": results,
            "rerank": {"query": QUERY, "documents": DOCS, "scores": vec(scores)},
        })

    prompts = {"query": "search_query : ", "document": "search_document : "}
    bi_encoder("st_mean_dense", 3001, Pooling(32, pooling_mode="mean"), True, True, prompts,
               None, "cosine", [
                   {"prompt_name": None, "prompt": None, "truncate_dim": None},
                   {"prompt_name": "query", "prompt": None, "truncate_dim": None},
                   {"prompt_name": "document", "prompt": None, "truncate_dim": None},
                   {"prompt_name": None, "prompt": "rerank : ", "truncate_dim": None},
                   {"prompt_name": "query", "prompt": None, "truncate_dim": 8},
                   {"prompt_name": "query", "prompt": None, "truncate_dim": 8,
                    "normalize_embeddings": True},
               ])
    bi_encoder("st_cls_oldkeys", 3002, Pooling(32, pooling_mode="cls"), False, False, None,
               None, "cosine", [{"prompt_name": None, "prompt": None, "truncate_dim": None}],
               old_keys=True)
    bi_encoder("st_mean_noprompt", 3003, Pooling(32, pooling_mode="mean", include_prompt=False),
               False, True, prompts, "query", "dot", [
                   {"prompt_name": None, "prompt": None, "truncate_dim": None},
                   {"prompt_name": "document", "prompt": None, "truncate_dim": None},
               ])

    # A one-label cross-encoder, saved by CrossEncoder.
    directory = out_root / "cross_encoder"
    shutil.rmtree(directory, ignore_errors=True)
    with tempfile.TemporaryDirectory() as tmp:
        backbone(Path(tmp), ModernBertForSequenceClassification, 3004, num_labels=1,
                 classifier_pooling="mean")
        model = CrossEncoder(tmp, num_labels=1, device="cpu",
                             model_kwargs={"attn_implementation": "sdpa"})
        model.save(str(directory), create_model_card=False)
    tidy(directory)
    model = CrossEncoder(str(directory), device="cpu", model_kwargs={"attn_implementation": "sdpa"})
    pairs = [(QUERY, d) for d in DOCS]
    scores = model.predict(pairs, batch_size=1, convert_to_tensor=True)
    raw = model.predict(pairs, batch_size=1, convert_to_tensor=True,
                        activation_fn=torch.nn.Identity())
    ranking = model.rank(QUERY, DOCS, batch_size=1)
    write_expected(directory, {
        "fixture": "cross_encoder", "versions": versions(sentence_transformers),
        "query": QUERY, "documents": DOCS, "scores": vec(scores), "raw_scores": vec(raw),
        "rank": [r["corpus_id"] for r in ranking],
    })


# ---------------------------------------------------------------- PyLate

def colbert_fixtures(out_root):
    # Expansion tokens attended to (as GTE-ModernColBERT-v1 sets) and not (PyLate's default:
    # the [MASK] tokens are queries of the attention but never its keys).
    colbert_fixture(out_root, "colbert", attend=True, seed=3005)
    colbert_fixture(out_root, "colbert_masked", attend=False, seed=3007)


def colbert_fixture(out_root, name, attend, seed):
    import pylate
    from pylate import models, scores as pscores

    directory = out_root / name
    shutil.rmtree(directory, ignore_errors=True)
    with tempfile.TemporaryDirectory() as tmp:
        backbone(Path(tmp), ModernBertModel, seed)
        torch.manual_seed(seed + 1)
        model = models.ColBERT(tmp, embedding_size=16, query_length=12, document_length=10,
                               attend_to_expansion_tokens=attend,
                               skiplist_words=[".", ",", "!", "the"], device="cpu",
                               model_kwargs={"attn_implementation": "sdpa"})
        model.save(str(directory))
    tidy(directory)
    model = models.ColBERT(str(directory), device="cpu",
                           model_kwargs={"attn_implementation": "sdpa"})
    assert model.attend_to_expansion_tokens == attend
    queries = [QUERY, "fish", "rust code on the gpu"]
    q = model.encode(queries, is_query=True, batch_size=1)
    d = model.encode(DOCS, is_query=False, batch_size=1)
    s = [float(pscores.colbert_scores(torch.tensor(q[0])[None], torch.tensor(x)[None])[0][0])
         for x in d]
    write_expected(directory, {
        "fixture": name, "versions": versions(pylate),
        "queries": queries, "query_embeddings": [vec(torch.tensor(x)) for x in q],
        "documents": DOCS, "document_embeddings": [vec(torch.tensor(x)) for x in d],
        "rerank": {"query": QUERY, "scores": rounded(s)},
    })


# ---------------------------------------------------------------- sparse (SPLADE)

SPARSE_PROMPTS = {"query": "search_query : ", "document": "search_document : "}
LOGIT_MARGIN = 0.05


def sparse_logits(model, tok, texts):
    """Every token's MLM logits of every text, rows concatenated."""
    rows = []
    for t in texts:
        enc = tok(t, return_tensors="pt")
        rows.append(model(**enc).logits[0])
    return torch.cat(rows)


def sparsify(directory, texts):
    """Scales and shifts the saved MLM head as described in the module docstring."""
    tok = PreTrainedTokenizerFast.from_pretrained(directory)
    model = ModernBertForMaskedLM.from_pretrained(directory, attn_implementation="sdpa").eval()
    dec = model.decoder
    with torch.no_grad():
        dec.bias.zero_()
        raw = sparse_logits(model, tok, texts)
        # Spread 1.6 around a centre 2.6 below zero: a few terms of each token are positive.
        model.head.norm.weight.mul_(1.6 / float(raw.std()))
        raw = sparse_logits(model, tok, texts)
        bias = torch.empty_like(dec.bias)
        for c in range(raw.shape[1]):
            col = raw[:, c] - 2.6
            # A column that no small shift clears of zero is never active.
            off = -(float(col.max()) + 2 * LOGIT_MARGIN)
            shifts = torch.cat([torch.linspace(-1.5, 1.5, 601), torch.tensor([off])])
            gaps = (col[None, :] + shifts[:, None]).abs().min(dim=1).values
            ok = (gaps[:-1] >= LOGIT_MARGIN).nonzero().flatten()
            best = int(ok[torch.argmin(shifts[ok].abs())]) if len(ok) else len(shifts) - 1
            bias[c] = -2.6 + shifts[best]
        dec.bias.copy_(bias)
        final = sparse_logits(model, tok, texts)
        assert float(final.abs().min()) >= LOGIT_MARGIN * 0.999
    model.save_pretrained(directory, safe_serialization=True)


def sparse_fixtures(out_root):
    sparse_fixture(out_root, "splade_max", 3011, "max", "relu", legacy=False)
    sparse_fixture(out_root, "splade_sum", 3012, "sum", "log1p_relu", legacy=True)


def sparse_fixture(out_root, name, seed, strategy, activation, legacy):
    import sentence_transformers
    from sentence_transformers import SparseEncoder
    from sentence_transformers.base.modules import Transformer
    from sentence_transformers.sparse_encoder.modules import SpladePooling

    every = TEXTS + [QUERY] + DOCS
    with_prompts = every + [p + t for p in SPARSE_PROMPTS.values() for t in every]
    directory = out_root / name
    shutil.rmtree(directory, ignore_errors=True)
    with tempfile.TemporaryDirectory() as tmp:
        backbone(Path(tmp), ModernBertForMaskedLM, seed)
        sparsify(tmp, with_prompts)
        modules = [Transformer(tmp, transformer_task="fill-mask", max_seq_length=64,
                               model_kwargs={"attn_implementation": "sdpa"}),
                   SpladePooling(pooling_strategy=strategy, activation_function=activation)]
        model = SparseEncoder(modules=modules, prompts=SPARSE_PROMPTS, device="cpu")
        model.save(str(directory), create_model_card=False)
    if legacy:
        # As sentence-transformers 5.x wrote it.
        mods = json.loads((directory / "modules.json").read_text())
        for m in mods:
            if m["type"].endswith("Transformer"):
                m["type"] = "sentence_transformers.sparse_encoder.models.MLMTransformer"
            elif m["type"].endswith("SpladePooling"):
                m["type"] = "sentence_transformers.sparse_encoder.models.SpladePooling"
                cfg_path = directory / m["path"] / "config.json"
                cfg = json.loads(cfg_path.read_text())
                cfg["word_embedding_dimension"] = cfg.pop("embedding_dimension", None)
                cfg_path.write_text(json.dumps(cfg, indent=2) + "\n")
        (directory / "modules.json").write_text(json.dumps(mods, indent=2) + "\n")
        bert = directory / "sentence_bert_config.json"
        cfg = json.loads(bert.read_text())
        cfg.pop("transformer_task", None)
        bert.write_text(json.dumps(cfg, indent=2) + "\n")
    tidy(directory)
    model = SparseEncoder(str(directory), device="cpu",
                          model_kwargs={"attn_implementation": "sdpa"})
    assert model[1].pooling_strategy == strategy and model[1].activation_function == activation

    def sparse_list(emb):
        out = []
        for row in emb:
            row = row.coalesce() if row.is_sparse else row.to_sparse().coalesce()
            idx = row.indices()[0].tolist()
            val = row.values().tolist()
            order = sorted(range(len(idx)), key=lambda i: idx[i])
            out.append({"indices": [idx[i] for i in order], "values": rounded([val[i] for i in order])})
        return out

    cases = []
    for case in [{"prompt_name": None, "max_active_dims": None},
                 {"prompt_name": "query", "max_active_dims": None},
                 {"prompt_name": "document", "max_active_dims": None},
                 {"prompt_name": None, "max_active_dims": 5}]:
        kw = {k: v for k, v in case.items() if v is not None}
        emb = model.encode(TEXTS, batch_size=1, convert_to_tensor=True, **kw)
        cases.append({**case, "vectors": sparse_list(emb)})
    nnz = [len(v["indices"]) for c in cases[:3] for v in c["vectors"]]
    print(f"{name}: non-zero terms per text {min(nnz)}..{max(nnz)} of {model[1].embedding_dimension}")
    q = model.encode([QUERY], prompt_name="query", batch_size=1, convert_to_tensor=True)
    d = model.encode(DOCS, prompt_name="document", batch_size=1, convert_to_tensor=True)
    scores = model.similarity(q, d)[0]
    write_expected(directory, {
        "fixture": name, "versions": versions(sentence_transformers), "texts": TEXTS,
        "similarity_fn_name": model.similarity_fn_name, "cases": cases,
        "rerank": {"query": QUERY, "documents": DOCS, "scores": vec(scores.to_dense())},
    })


# ---------------------------------------------------------------- multi-vector

def multivector_fixtures(out_root):
    import sentence_transformers
    from sentence_transformers import MultiVectorEncoder
    from sentence_transformers.base.modules import Dense, Normalize, Transformer
    from sentence_transformers.multi_vector_encoder.modules import MultiVectorMask

    name = "mve_native"
    directory = out_root / name
    shutil.rmtree(directory, ignore_errors=True)
    with tempfile.TemporaryDirectory() as tmp:
        backbone(Path(tmp), ModernBertModel, 3021)
        torch.manual_seed(3022)
        dense = Dense(32, 16, bias=False, activation_function=torch.nn.Identity(),
                      module_input_name="token_embeddings")
        with torch.no_grad():
            dense.linear.weight.normal_(0.0, 0.5)
        modules = [Transformer(tmp, document_length=10,
                               query_expansion={"strategy": "fixed", "attend": False, "length": 12},
                               model_kwargs={"attn_implementation": "sdpa"}),
                   dense, MultiVectorMask(skiplist_words=[".", ",", "!", "the"]),
                   Normalize(module_input_name="token_embeddings")]
        model = MultiVectorEncoder(modules=modules, device="cpu",
                                   prompts={"query": "query : ", "document": "document : "})
        model.save(str(directory), create_model_card=False)
    tidy(directory)
    model = MultiVectorEncoder(str(directory), device="cpu",
                               model_kwargs={"attn_implementation": "sdpa"})
    queries = [QUERY, "fish", "rust code on the gpu"]
    q = model.encode_query(queries, batch_size=1)
    d = model.encode_document(DOCS, batch_size=1)
    scores = model.similarity(q[:1], d)[0]
    write_expected(directory, {
        "fixture": name, "versions": versions(sentence_transformers),
        "similarity_fn_name": model.similarity_fn_name,
        "queries": queries, "query_embeddings": [vec(torch.as_tensor(x)) for x in q],
        "documents": DOCS, "document_embeddings": [vec(torch.as_tensor(x)) for x in d],
        "rerank": {"query": QUERY, "scores": vec(scores)},
    })


def truncation_fixture(out_root):
    import sentence_transformers
    from sentence_transformers import SentenceTransformer

    directory = out_root / "st_mean_noprompt"
    model = SentenceTransformer(str(directory), device="cpu",
                                model_kwargs={"attn_implementation": "sdpa"})
    limit = 12
    model.max_seq_length = limit
    texts = [
        "the cat of the old city ran to the river and the dog ran to the tree",
        "what is the capital of france and where is paris on the river",
    ]
    cases = []
    for side in ["right", "left"]:
        model.tokenizer.truncation_side = side
        for name in [None, "document"]:
            prompt = model.prompts[name or model.default_prompt_name]
            emb = model.encode(texts, prompt_name=name, batch_size=1, convert_to_tensor=True)
            ids = [model.tokenize([prompt + t])["input_ids"][0].tolist() for t in texts]
            case = {"side": side, "prompt_name": name, "prompt": prompt,
                    "input_ids": ids, "embeddings": vec(emb)}
            if side == "left":
                # The prompt whole and the text's last words that fit (one token a word).
                n_prompt = len(model.tokenizer(prompt, add_special_tokens=False)["input_ids"])
                room = limit - 2 - n_prompt
                tails = [" ".join(t.split()[-room:]) for t in texts]
                model.tokenizer.truncation_side = "right"
                kept = model.encode(tails, prompt_name=name, batch_size=1,
                                    convert_to_tensor=True)
                model.tokenizer.truncation_side = side
                case["kept_texts"] = tails
                case["kept_embeddings"] = vec(kept)
            cases.append(case)
    with open(directory / "truncation.json", "w") as f:
        json.dump({"versions": versions(sentence_transformers), "max_seq_length": limit,
                   "texts": texts, "cases": cases}, f, indent=1)
        f.write("\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    here = Path(__file__).resolve().parent.parent
    parser.add_argument("which", choices=["st", "colbert", "sparse", "multivector", "truncation"])
    parser.add_argument("--out", type=Path, default=here / "tests" / "fixtures")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    if args.which == "st":
        st_fixtures(args.out)
    elif args.which == "sparse":
        sparse_fixtures(args.out)
    elif args.which == "multivector":
        multivector_fixtures(args.out)
    elif args.which == "truncation":
        truncation_fixture(args.out)
    else:
        colbert_fixtures(args.out)


if __name__ == "__main__":
    main()
