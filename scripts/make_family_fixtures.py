#!/usr/bin/env python3
"""Write tiny ModernBERT checkpoints of the family's quirks, and what transformers computes for
them, for wgbert's tests (tests/family.rs).

Run by hand, never at test time (torch, transformers >= 5, tokenizers, safetensors):

    python3 scripts/make_family_fixtures.py                 # writes tests/fixtures/<name>/
    python3 scripts/make_family_fixtures.py --only rope_yarn --out /tmp/fx

Tokenizer kinds. Each fixture holds a tokenizer.json built here with the `tokenizers` library
(trained on a few sentences, so its vocabulary is small), of the kind the family member ships,
and texts whose ids transformers' own tokenizer (PreTrainedTokenizerFast on that file) gives:

    family_bytebpe   ModernBERT's kind (base, large, gte-modernbert, modernbert-embed, Granite
                     R2 English, the rerankers, GTE-ModernColBERT, Ettin): byte-level BPE,
                     `[CLS] A [SEP]`, `[MASK]` that swallows the space before it. With Ettin's
                     config quirks: `vocab_size` two past the tokenizer (50370 against 50368),
                     `max_position_embeddings` 7999, a local RoPE theta of 160000 (the global
                     one). Masked LM.
    family_gemma     mmBERT's kind (Gemma's tokenizer): SentencePiece BPE, spaces as U+2581,
                     byte fallback (`<0x..>` pieces for what the vocabulary lacks), `<bos> A
                     <eos>`, `<mask>`, ids pad 0, eos 1, bos 2, unk 3, mask 4. mmBERT's local
                     theta of 160000. Masked LM.
    family_swiglu    Granite multilingual R2's quirks: the GLU with silu (SwiGLU), 32768
                     positions, a Gemma-kind tokenizer. Encoder.

Scaled RoPE: `rope_<type>` for every `rope_type` transformers 5 accepts for ModernBERT other than
`default` (linear, dynamic, yarn, longrope, llama3, proportional), each with different
parameters on full and sliding layers; inputs up to 300 tokens, so that positions past the
scalings' thresholds count (a sample of the positions kept, as make_fixtures.py's `long`).
Encoders of two layers (full, sliding) with ids as make_fixtures.py draws them.

Weights are stored in BF16 (the references are of the weights as written).

expected.json is make_fixtures.py's, plus for the tokenizer fixtures `texts` (the inputs' texts)
and `mask_token`; `special` names the fixture's special ids. Outputs are cross-checked against
make_fixtures.py's NumPy reference, given the frequencies and attention factor transformers
built for each layer type.
"""

import argparse
import json
import shutil
import sys
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from tokenizers.trainers import BpeTrainer
from transformers import ModernBertConfig, ModernBertForMaskedLM, ModernBertModel
from transformers import PreTrainedTokenizerFast

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_fixtures as mf  # noqa: E402

CORPUS = [
    "The capital of France is Paris, and Berlin is the capital of Germany.",
    "A small model reads every token of a long document once.",
    "Encoders embed queries and documents for retrieval and reranking.",
    "Les modèles multilingues lisent le français, l'español y el português.",
    "Die Hauptstadt von Österreich ist Wien; 東京は日本の首都です。",
    "def add(a, b):\n    return a + b  # code is text too",
    "Numbers like 3.14159, 42 and 2026 appear in tables.",
]

TEXTS = [
    "The capital of France is {mask}.",
    "Encoders read every {mask} of a document.",
    "Die Hauptstadt von Österreich ist {mask}!",
    "Unseen: Ωmega ß 🤖 robot\ttab  two spaces",
    "{mask}",
    "return a + b  # {mask} is text too",
]

ROPES = {
    "linear": ({"rope_type": "linear", "factor": 2.5},
               {"rope_type": "linear", "factor": 1.5}),
    "dynamic": ({"rope_type": "dynamic", "factor": 2.0}, {"rope_type": "default"}),
    "yarn": ({"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 128},
             {"rope_type": "yarn", "factor": 2.0, "original_max_position_embeddings": 64,
              "attention_factor": 1.3, "beta_fast": 16.0, "beta_slow": 2.0}),
    "longrope": ({"rope_type": "longrope", "original_max_position_embeddings": 512,
                  "short_factor": [1.0, 1.1, 1.3, 1.6, 2.0, 2.5, 3.0, 4.0],
                  "long_factor": [2.0] * 8, "attention_factor": 1.2},
                 {"rope_type": "longrope", "original_max_position_embeddings": 512,
                  "factor": 2.0, "short_factor": [1.0, 1.0, 1.2, 1.2, 1.5, 1.5, 2.0, 2.0],
                  "long_factor": [3.0] * 8}),
    "llama3": ({"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                "high_freq_factor": 4.0, "original_max_position_embeddings": 64},
               {"rope_type": "llama3", "factor": 4.0, "low_freq_factor": 1.0,
                "high_freq_factor": 2.0, "original_max_position_embeddings": 32}),
    "proportional": ({"rope_type": "proportional", "partial_rotary_factor": 0.5, "factor": 2.0},
                     {"rope_type": "proportional", "partial_rotary_factor": 0.25}),
}

SMALL = dict(hidden_size=32, num_attention_heads=2, intermediate_size=48, num_hidden_layers=3,
             local_attention=16)


def byte_level_bpe():
    """ModernBERT's kind: byte-level BPE, its specials after the merges."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = BpeTrainer(vocab_size=400, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                         show_progress=False)
    tok.train_from_iterator(CORPUS, trainer)
    specials = ["[UNK]", "[CLS]", "[SEP]", "[PAD]"]
    tok.add_special_tokens(specials)
    from tokenizers import AddedToken
    tok.add_special_tokens([AddedToken("[MASK]", lstrip=True, special=True)])
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    names = dict(unk="[UNK]", cls="[CLS]", sep="[SEP]", pad="[PAD]", mask="[MASK]")
    return tok, names


def gemma_bpe():
    """Gemma's kind: SentencePiece BPE over U+2581-joined text with byte fallback."""
    specials = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>"]
    trained = Tokenizer(models.BPE(unk_token="<unk>"))
    trained.normalizer = normalizers.Replace(" ", "\u2581")
    trainer = BpeTrainer(vocab_size=360, special_tokens=specials, show_progress=False)
    trained.train_from_iterator(CORPUS, trainer)
    learned = json.loads(trained.to_str())["model"]
    # Specials first, then the 256 byte pieces, then what BPE learned.
    vocab = {t: i for i, t in enumerate(specials)}
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    for piece, _ in sorted(learned["vocab"].items(), key=lambda kv: kv[1]):
        vocab.setdefault(piece, len(vocab))
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in learned["merges"]]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", byte_fallback=True,
                               fuse_unk=True))
    tok.normalizer = normalizers.Replace(" ", "\u2581")
    tok.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(),
                                     decoders.Fuse()])
    tok.add_special_tokens(specials)
    tok.post_processor = processors.TemplateProcessing(
        single="<bos> $A <eos>", pair="<bos> $A <eos> $B <eos>",
        special_tokens=[("<bos>", 2), ("<eos>", 1)])
    names = dict(pad="<pad>", eos="<eos>", bos="<bos>", unk="<unk>", mask="<mask>")
    return tok, names


def save_tokenizer(tok, names, directory, max_len):
    """tokenizer.json (and a tokenizer_config.json so that transformers loads it as a fast
    tokenizer); returns transformers' tokenizer over the saved file."""
    tok.save(str(directory / "tokenizer.json"))
    fast = PreTrainedTokenizerFast(tokenizer_file=str(directory / "tokenizer.json"),
                                   model_max_length=max_len,
                                   **{f"{k}_token": v for k, v in names.items()
                                      if k in ("unk", "cls", "sep", "pad", "mask", "bos", "eos")})
    fast.save_pretrained(directory)
    for extra in ("special_tokens_map.json",):
        (directory / extra).unlink(missing_ok=True)
    return PreTrainedTokenizerFast.from_pretrained(directory)


def write_model(directory, cls, config, seed):
    torch.manual_seed(seed)
    model = cls(config)
    model.eval()
    mf.randomize(model, seed)
    # BF16 halves the files; the references are of the weights as written.
    model.to(torch.bfloat16)
    model.save_pretrained(directory, safe_serialization=True)
    for extra in directory.iterdir():
        if extra.name == "generation_config.json":
            extra.unlink()
        else:
            extra.chmod(0o644)
    model = cls.from_pretrained(directory, attn_implementation="sdpa", dtype=torch.float32)
    model.eval()
    return model


def scaled_ropes(model):
    """Per layer type, the (inv_freq, attention_factor) transformers built."""
    encoder = model if isinstance(model, ModernBertModel) else model.model
    r = encoder.rotary_emb
    return {t: (getattr(r, f"{t}_inv_freq").double().numpy(),
                float(getattr(r, f"{t}_attention_scaling")))
            for t in ("full_attention", "sliding_attention")}


def family(name, out_root, seed):
    directory = out_root / name
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    if name == "family_bytebpe":
        tok, names = byte_level_bpe()
        ids = {k: tok.token_to_id(v) for k, v in names.items()}
        config = ModernBertConfig(
            vocab_size=tok.get_vocab_size() + 2, max_position_embeddings=7999,
            global_rope_theta=160000.0, local_rope_theta=160000.0,
            pad_token_id=ids["pad"], cls_token_id=ids["cls"], sep_token_id=ids["sep"],
            bos_token_id=ids["cls"], eos_token_id=ids["sep"], **SMALL)
        cls = ModernBertForMaskedLM
    else:
        tok, names = gemma_bpe()
        ids = {k: tok.token_to_id(v) for k, v in names.items()}
        extra = dict(SMALL)
        if name == "family_swiglu":
            extra.update(hidden_activation="silu", max_position_embeddings=32768)
            cls = ModernBertModel
        else:
            extra.update(global_rope_theta=160000.0, local_rope_theta=160000.0,
                         max_position_embeddings=8192)
            cls = ModernBertForMaskedLM
        config = ModernBertConfig(
            vocab_size=tok.get_vocab_size(), pad_token_id=0, eos_token_id=1, bos_token_id=2,
            cls_token_id=2, sep_token_id=1, **extra)
    hf_tok = save_tokenizer(tok, names, directory, config.max_position_embeddings)
    model = write_model(directory, cls, config, seed)
    mask = names["mask"]
    texts = [t.format(mask=mask) for t in TEXTS]
    inputs = [hf_tok(t)["input_ids"] for t in texts]
    outputs, worst = mf.run_outputs(name, cls, model, directory, inputs)
    expected = mf.expected_header(name, cls, model.config, torch.bfloat16, "5.x")
    expected["special"] = ids
    expected.update(mask_token=mask, tokenizers_version=__import__("tokenizers").__version__,
                    texts=texts, inputs=inputs, outputs=outputs)
    mf.write_expected(directory, expected)
    return directory, worst


def rope(name, out_root, seed):
    directory = out_root / name
    shutil.rmtree(directory, ignore_errors=True)
    full, sliding = ROPES[name.removeprefix("rope_")]
    params = {"full_attention": {"rope_theta": 160000.0, **full},
              "sliding_attention": {"rope_theta": 10000.0, **sliding}}
    config = ModernBertConfig(**{**mf.COMMON, **SMALL, "rope_parameters": params,
                                 "num_hidden_layers": 2})
    model = write_model(directory, ModernBertModel, config, seed)
    inputs = mf.make_inputs(seed + 1, [1, 7, 37, 150, 300])
    outputs, worst = mf.run_outputs(name, ModernBertModel, model, directory, inputs,
                                    sample=seed + 2, rope=scaled_ropes(model))
    expected = mf.expected_header(name, ModernBertModel, model.config, torch.bfloat16, "5.x")
    expected.update(inputs=inputs, outputs=outputs)
    mf.write_expected(directory, expected)
    return directory, worst


FIXTURES = ["family_bytebpe", "family_gemma", "family_swiglu"] + [f"rope_{t}" for t in ROPES]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    here = Path(__file__).resolve().parent.parent
    parser.add_argument("--out", type=Path, default=here / "tests" / "fixtures")
    parser.add_argument("--only", choices=FIXTURES, action="append")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    for i, name in enumerate(FIXTURES):
        if args.only and name not in args.only:
            continue
        make = family if name.startswith("family_") else rope
        directory, worst = make(name, args.out, seed=5000 + 31 * i)
        size = sum(p.stat().st_size for p in directory.iterdir())
        print(f"{name}: {size / 1024:.0f} KiB, worst relative gap to NumPy {worst:.2e}")


if __name__ == "__main__":
    main()
