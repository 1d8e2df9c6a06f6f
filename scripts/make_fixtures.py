#!/usr/bin/env python3
"""Write tiny random ModernBERT checkpoints and their reference outputs for wgbert's tests.

Run by hand, never at test time (needs torch, transformers >= 4.48 and safetensors):

    python3 scripts/make_fixtures.py                # writes tests/fixtures/<name>/
    python3 scripts/make_fixtures.py --out /tmp/fx  # somewhere else
    python3 scripts/make_fixtures.py --only mlm_v4  # one fixture

Every fixture directory holds `config.json`, the weights (`model.safetensors`, or shards plus
`model.safetensors.index.json`) and `expected.json`. All models share a vocabulary of 512 ids
with pad=0, cls=1, sep=2, mask=3, unk=4, and `max_position_embeddings` 512, except `long`:
heads of 64, a window of 128, global attention every third layer, 2048 positions, and inputs
of up to 1337 tokens (1984 in all, packed into one wgbert call by tests/parity.rs), so that
RoPE past position 1024 and the sliding window meet transformers at model level. Parameters are
re-drawn after construction (norm weights around 1, non-zero biases, unit-scale matrices) so that
a wrong index, a dropped bias or a wrong window changes the outputs visibly.

References come from the checkpoint *as written*: each fixture is reloaded from disk in float32
with `attn_implementation="sdpa"` (so BF16 weights count with their rounded values, and a
hand-written 4.x config.json is read back by transformers itself), every input runs alone
(batch 1, no padding), and the outputs are cross-checked against an independent float64 NumPy
implementation of shared/MODERNBERT.md before they are written.

expected.json:
    config              fixture name
    model_class         transformers class that produced the outputs
    task                "mlm" | "sequence_classification" | "token_classification" | "encoder"
    heads               {"mlm": bool, "classifier": null | num_labels}
    weights_dtype       "F32" | "BF16" (as stored)
    dialect             "4.x" | "5.x" (config.json keys)
    special             {"pad": 0, "cls": 1, "sep": 2, "mask": 3, "unk": 4}
    transformers_version, torch_version
    inputs              list of token-id lists (start with cls; length >= 2 ends with sep)
    outputs             one object per input:
        last_hidden_state   [len][hidden], after final_norm; with `positions`, [n][hidden]
        positions           [n] the token positions `last_hidden_state` holds, ascending: a
                            sample where the input is long (`long`: the ends, the window's
                            edges, both sides of position 1024, random ones); absent: every token
        mlm_top6            [len][6] ids of the 6 largest logits, best first      (mlm)
        mlm_top6_logits     [len][6] those logits                                 (mlm)
        mlm_logsumexp       [len] log of the softmax's denominator over the vocabulary (mlm)
        logits              [num_labels] (sequence) or [len][num_labels] (token)  (classifiers)
Floats are rounded to 7 significant digits. The top 6 let a test judge a 5th id against the
6th (a tie, or a wrong id); the log-sum-exp gives every id's probability, exp(logit - lse).

The retrieval-layout fixtures (sentence-transformers bi-encoders and cross-encoder, a PyLate
ColBERT) are written by the sibling scripts/make_st_fixtures.py, which reuses `randomize` and
`rounded` from here; the fixtures of the family's quirks (tokenizers of each kind, every scaled
RoPE) by scripts/make_family_fixtures.py, which reuses this file's writer and reference.
"""

import argparse
import json
import math
import shutil
from pathlib import Path

import numpy as np
import torch
import transformers
from safetensors.torch import load_file
from transformers import (
    ModernBertConfig,
    ModernBertForMaskedLM,
    ModernBertForSequenceClassification,
    ModernBertForTokenClassification,
    ModernBertModel,
)

SPECIAL = {"pad": 0, "cls": 1, "sep": 2, "mask": 3, "unk": 4}
VOCAB = 512
LENGTHS = [1, 2, 3, 7, 20, 37]

COMMON = dict(
    vocab_size=VOCAB,
    max_position_embeddings=512,
    pad_token_id=SPECIAL["pad"],
    cls_token_id=SPECIAL["cls"],
    sep_token_id=SPECIAL["sep"],
    bos_token_id=SPECIAL["cls"],
    eos_token_id=SPECIAL["sep"],
)

# name -> (class, config kwargs, options)
FIXTURES = {
    "mlm_v4": (
        ModernBertForMaskedLM,
        dict(hidden_size=32, num_attention_heads=2, intermediate_size=48, num_hidden_layers=4,
             local_attention=8),
        dict(dialect="4.x", every=3, global_theta=160000.0, local_theta=10000.0),
    ),
    "mlm_v5_bf16": (
        ModernBertForMaskedLM,
        dict(hidden_size=64, num_attention_heads=4, intermediate_size=96, num_hidden_layers=3,
             local_attention=16, hidden_activation="gelu_pytorch_tanh", attention_bias=True,
             mlp_bias=True, norm_bias=True, classifier_bias=True,
             layer_types=["full_attention", "sliding_attention", "full_attention"],
             rope_parameters={"full_attention": {"rope_type": "default", "rope_theta": 80000.0},
                              "sliding_attention": {"rope_type": "default", "rope_theta": 5000.0}}),
        dict(dtype=torch.bfloat16),
    ),
    "cls_mean": (
        ModernBertForSequenceClassification,
        dict(hidden_size=32, num_attention_heads=2, intermediate_size=48, num_hidden_layers=3,
             local_attention=8, classifier_pooling="mean",
             id2label={0: "negative", 1: "neutral", 2: "positive"},
             label2id={"negative": 0, "neutral": 1, "positive": 2}),
        dict(),
    ),
    "tokcls": (
        ModernBertForTokenClassification,
        dict(hidden_size=32, num_attention_heads=2, intermediate_size=64, num_hidden_layers=3,
             local_attention=16, id2label={0: "O", 1: "ENT"}, label2id={"O": 0, "ENT": 1}),
        dict(),
    ),
    "mlm_sharded": (
        ModernBertForMaskedLM,
        dict(hidden_size=32, num_attention_heads=2, intermediate_size=48, num_hidden_layers=3,
             local_attention=8),
        dict(max_shard_size="40KB"),
    ),
    "encoder_noprefix": (
        ModernBertModel,
        dict(hidden_size=32, num_attention_heads=2, intermediate_size=48, num_hidden_layers=3,
             local_attention=8),
        dict(),
    ),
    # Long inputs: one head of 64 (so the files stay small), windows of 64 on either side,
    # layers global, local, local, global; BF16 weights halve the file.
    "long": (
        ModernBertModel,
        dict(hidden_size=64, num_attention_heads=1, intermediate_size=96, num_hidden_layers=4,
             local_attention=128, global_attn_every_n_layers=3, max_position_embeddings=2048),
        dict(dtype=torch.bfloat16, lengths=[1337, 450, 129, 64, 3, 1], sample=True),
    ),
}


def randomize(model, seed):
    """Redraws every parameter at a scale where each one matters."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g)
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.2 * noise)
            elif name.endswith(".bias"):
                p.copy_(0.2 * noise)
            elif name.endswith("tok_embeddings.weight"):
                p.copy_(noise)
            else:
                p.copy_(noise / math.sqrt(p.shape[1]))


def make_inputs(seed, lengths=LENGTHS):
    g = torch.Generator().manual_seed(seed)
    inputs = []
    for n in lengths:
        body = torch.randint(5, VOCAB, (max(n - 2, 0),), generator=g).tolist()
        if len(body) >= 3:
            body[len(body) // 2] = SPECIAL["mask"]
        ids = [SPECIAL["cls"]] + body + ([SPECIAL["sep"]] if n >= 2 else [])
        inputs.append(ids)
    return inputs


def sample_positions(n, half_window, seed):
    """The positions of a long input whose outputs are stored: both ends, the first and last
    tokens whose window is not cut by an end (and their neighbours), both sides of 512, of 1024
    and of 1024 +- the half window, and a few random ones, the most of them past 1024."""
    picks = {0, 1, n - 2, n - 1}
    for edge in (half_window, n - 1 - half_window, 512, 1024 - half_window, 1024,
                 1024 + half_window):
        picks.update((edge - 1, edge, edge + 1))
    g = torch.Generator().manual_seed(seed)
    if n > 1024 + 16:
        picks.update(torch.randint(1025, n, (12,), generator=g).tolist())
    if n > 16:
        picks.update(torch.randint(0, n, (6,), generator=g).tolist())
    return sorted(p for p in picks if 0 <= p < n)


def rewrite_as_v4(directory, every, global_theta, local_theta):
    """Turns a transformers-5 config.json into the released 4.x dialect."""
    path = directory / "config.json"
    cfg = json.loads(path.read_text())
    for key in ("layer_types", "rope_parameters", "dtype"):
        cfg.pop(key, None)
    cfg.update(global_attn_every_n_layers=every, global_rope_theta=global_theta,
               local_rope_theta=local_theta, torch_dtype="float32",
               layer_norm_eps=1e-12,  # the stale key of early revisions: must be ignored
               transformers_version="4.48.0")
    path.write_text(json.dumps(dict(sorted(cfg.items())), indent=2) + "\n")


# ---------------------------------------------------------------- independent NumPy reference

def act(name, x):
    if name in ("gelu", "gelu_python"):
        return 0.5 * x * (1.0 + np.vectorize(math.erf)(x / math.sqrt(2.0)))
    if name in ("gelu_pytorch_tanh", "gelu_new", "gelu_fast"):
        return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))
    if name in ("silu", "swish"):
        return x / (1.0 + np.exp(-x))
    if name == "relu":
        return np.maximum(x, 0.0)
    raise ValueError(name)


def reference(directory, cfg, ids, scaled=None):
    """MODERNBERT.md in float64: returns (last_hidden_state, head outputs or None). `scaled`
    maps a layer type to (inv_freq, attention_factor) of a scaled RoPE (default: theta's)."""
    w = {}
    for f in sorted(directory.glob("*.safetensors")):
        for k, v in load_file(str(f)).items():
            k = "model." + k if k.split(".")[0] in ("embeddings", "layers", "final_norm") else k
            w[k] = v.float().double().numpy()
    eps = cfg.norm_eps

    def ln(x, p):
        y = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + eps)
        return y * w[p + ".weight"] + w.get(p + ".bias", 0.0)

    def lin(x, p):
        return x @ w[p + ".weight"].T + w.get(p + ".bias", 0.0)

    n, hdim, nh = len(ids), cfg.hidden_size, cfg.num_attention_heads
    d = hdim // nh
    h = ln(w["model.embeddings.tok_embeddings.weight"][ids], "model.embeddings.norm")
    pos = np.arange(n)[:, None]
    for i in range(cfg.num_hidden_layers):
        kind = cfg.layer_types[i]
        theta = cfg.rope_parameters[kind]["rope_theta"]
        a = h if i == 0 else ln(h, f"model.layers.{i}.attn_norm")
        q, k, v = np.split(lin(a, f"model.layers.{i}.attn.Wqkv"), 3, axis=-1)
        inv, factor = 1.0 / theta ** (np.arange(0, d, 2) / d), 1.0
        if scaled is not None:
            inv, factor = scaled[kind]
        phi = (pos * inv).astype(np.float32).astype(np.float64)
        cos, sin = np.cos(phi) * factor, np.sin(phi) * factor
        allowed = np.ones((n, n), bool)
        if kind == "sliding_attention":
            allowed = np.abs(pos - pos.T) <= cfg.local_attention // 2
        outs = []
        for head in range(nh):
            def rope(x):
                x1, x2 = x[:, :d // 2], x[:, d // 2:]
                return np.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], -1)
            sl = slice(head * d, (head + 1) * d)
            s = rope(q[:, sl]) @ rope(k[:, sl]).T / math.sqrt(d)
            s = np.where(allowed, s, -np.inf)
            p = np.exp(s - s.max(-1, keepdims=True))
            outs.append((p / p.sum(-1, keepdims=True)) @ v[:, sl])
        h = h + lin(np.concatenate(outs, -1), f"model.layers.{i}.attn.Wo")
        x = lin(ln(h, f"model.layers.{i}.mlp_norm"), f"model.layers.{i}.mlp.Wi")
        inp, gate = np.split(x, 2, axis=-1)
        h = h + lin(act(cfg.hidden_activation, inp) * gate, f"model.layers.{i}.mlp.Wo")
    h = ln(h, "model.final_norm")
    if "head.dense.weight" not in w:
        return h, None
    head = lambda x: ln(act(cfg.classifier_activation, lin(x, "head.dense")), "head.norm")
    if "classifier.weight" in w:
        if cfg.architectures[0].endswith("SequenceClassification"):
            pooled = h[0] if cfg.classifier_pooling == "cls" else h.mean(0)
            return h, lin(head(pooled), "classifier")
        return h, lin(head(h), "classifier")
    return h, head(h) @ w["model.embeddings.tok_embeddings.weight"].T + w.get("decoder.bias", 0.0)


# ---------------------------------------------------------------- writing

def rounded(x):
    if isinstance(x, (list, tuple)):
        return [rounded(v) for v in x]
    return float(f"{x:.7g}")


def check(name, what, got, want, tol=1e-4):
    err = np.max(np.abs(np.asarray(got, np.float64) - want) / (1.0 + np.abs(want)))
    if not err <= tol:
        raise SystemExit(f"{name}: {what} differs from the NumPy reference by {err:.3g}")
    return err


def run_outputs(name, cls, model, directory, inputs, sample=None, rope=None):
    """transformers' outputs for each input alone (batch 1), cross-checked against the NumPy
    reference (`rope`: per layer type (inv_freq, attention_factor) of a scaled RoPE); with
    `sample` (a seed), long inputs keep a sample of positions. Returns (outputs, worst gap)."""
    cfg = model.config
    encoder = model if cls is ModernBertModel else model.model
    outputs, worst = [], 0.0
    with torch.no_grad():
        for i, ids in enumerate(inputs):
            t = torch.tensor([ids])
            hidden = encoder(input_ids=t).last_hidden_state[0]
            ref_hidden, ref_head = reference(directory, cfg, ids, scaled=rope)
            worst = max(worst, check(name, "last_hidden_state", hidden, ref_hidden))
            if sample is not None:
                positions = sample_positions(len(ids), cfg.local_attention // 2, sample + i)
                out = {"positions": positions,
                       "last_hidden_state": rounded(hidden[positions].tolist())}
            else:
                out = {"last_hidden_state": rounded(hidden.tolist())}
            if cls is ModernBertForMaskedLM:
                logits = model(input_ids=t).logits[0]
                worst = max(worst, check(name, "mlm logits", logits, ref_head))
                top = torch.topk(logits, 6, dim=-1)
                out["mlm_top6"] = top.indices.tolist()
                out["mlm_top6_logits"] = rounded(top.values.tolist())
                lse = torch.logsumexp(logits.double(), dim=-1)
                ref_lse = np.log(np.exp(ref_head - ref_head.max(-1, keepdims=True)).sum(-1))
                worst = max(worst, check(name, "mlm log-sum-exp", lse,
                                         ref_lse + ref_head.max(-1)))
                out["mlm_logsumexp"] = rounded(lse.tolist())
            elif cls is not ModernBertModel:
                logits = model(input_ids=t).logits[0]
                worst = max(worst, check(name, "classifier logits", logits, ref_head))
                out["logits"] = rounded(logits.tolist())
            outputs.append(out)
    return outputs, worst


def expected_header(name, cls, cfg, dtype, dialect):
    """The fields of expected.json before `inputs` and `outputs`."""
    task = {ModernBertForMaskedLM: "mlm", ModernBertForSequenceClassification:
            "sequence_classification", ModernBertForTokenClassification: "token_classification",
            ModernBertModel: "encoder"}[cls]
    labels = cfg.num_labels if task.endswith("classification") else None
    return {
        "config": name,
        "model_class": cls.__name__,
        "task": task,
        "heads": {"mlm": task == "mlm", "classifier": labels},
        "weights_dtype": "BF16" if dtype == torch.bfloat16 else "F32",
        "dialect": dialect,
        "special": SPECIAL,
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
    }


def write_expected(directory, expected):
    """expected.json with one line per input and per output (lists of texts and ids too)."""
    with open(directory / "expected.json", "w") as f:
        f.write("{\n")
        items = list(expected.items())
        for i, (key, value) in enumerate(items):
            sep = "," if i + 1 < len(items) else ""
            if key in ("inputs", "outputs", "texts"):
                rows = ",\n    ".join(json.dumps(v, separators=(",", ":"), ensure_ascii=False)
                                       for v in value)
                f.write(f'  "{key}": [\n    {rows}\n  ]{sep}\n')
            else:
                f.write(f"  {json.dumps(key)}: {json.dumps(value, ensure_ascii=False)}{sep}\n")
        f.write("}\n")


def make(name, out_root, seed):
    cls, kwargs, opts = FIXTURES[name]
    directory = out_root / name
    shutil.rmtree(directory, ignore_errors=True)
    torch.manual_seed(seed)
    config = ModernBertConfig(**{**COMMON, **kwargs})
    model = cls(config)
    model.eval()
    randomize(model, seed)
    model.to(opts.get("dtype", torch.float32))
    save_kwargs = {"max_shard_size": opts["max_shard_size"]} if "max_shard_size" in opts else {}
    model.save_pretrained(directory, safe_serialization=True, **save_kwargs)
    for extra in directory.iterdir():
        if extra.name == "generation_config.json":
            extra.unlink()
        else:
            extra.chmod(0o644)  # safetensors writes 0600 temp files
    if opts.get("dialect") == "4.x":
        rewrite_as_v4(directory, opts["every"], opts["global_theta"], opts["local_theta"])

    # The reference is the checkpoint as written, read back by transformers in float32.
    model = cls.from_pretrained(directory, attn_implementation="sdpa", dtype=torch.float32)
    model.eval()
    cfg = model.config
    inputs = make_inputs(seed + 1, opts.get("lengths", LENGTHS))
    sample = seed + 2 if opts.get("sample") else None
    outputs, worst = run_outputs(name, cls, model, directory, inputs, sample=sample)
    dialect = "4.x" if opts.get("dialect") == "4.x" else "5.x"
    expected = expected_header(name, cls, cfg, opts.get("dtype"), dialect)
    expected.update(inputs=inputs, outputs=outputs)
    write_expected(directory, expected)
    size = sum(p.stat().st_size for p in directory.iterdir())
    print(f"{name}: {size / 1024:.0f} KiB, worst relative gap to NumPy {worst:.2e}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    here = Path(__file__).resolve().parent.parent
    parser.add_argument("--out", type=Path, default=here / "tests" / "fixtures")
    parser.add_argument("--only", choices=sorted(FIXTURES), action="append")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    for i, name in enumerate(FIXTURES):
        if args.only and name not in args.only:
            continue
        make(name, args.out, seed=1000 + 17 * i)


if __name__ == "__main__":
    main()
