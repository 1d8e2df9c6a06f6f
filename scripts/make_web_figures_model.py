#!/usr/bin/env python3
"""Write the model of scripts/web_figures.sh: a random-weight ModernBERT with ModernBERT's
real tokenizer, saved by transformers (config.json, model.safetensors, the tokenizer files)
and exported to ONNX by torch's exporter (onnx/model.onnx, as transformers.js looks for it),
so that wgbert-web and transformers.js run the same weights.

Run by scripts/web_figures.sh, never at test time:

    python3 scripts/make_web_figures_model.py --tokenizer TOKENIZER_JSON --out DIR [--layers N]

The shape is ModernBERT's (vocabulary 50368, head size 64, a global layer every third, a
128-token window) at a smaller width and depth (hidden 256, intermediate 384, 4 heads,
4 layers by default): big enough that both engines spend their time in the encoder, small
enough for CPU WebGPU adapters.
"""

import argparse
import json
import shutil
from pathlib import Path

import torch
from transformers import ModernBertConfig, ModernBertModel, PreTrainedTokenizerFast


class LastHidden(torch.nn.Module):
    """The encoder with the plain inputs and output that an ONNX feature extractor has."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask):
        return self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tokenizer", required=True, help="ModernBERT's tokenizer.json")
    ap.add_argument("--out", required=True)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--hidden", type=int, default=256)
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)

    tok = PreTrainedTokenizerFast(
        tokenizer_file=args.tokenizer,
        pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]",
        unk_token="[UNK]", model_max_length=8192,
    )
    ids = {t: tok.convert_tokens_to_ids(t) for t in ["[PAD]", "[CLS]", "[SEP]", "[MASK]"]}
    config = ModernBertConfig(
        vocab_size=50368,
        hidden_size=args.hidden,
        intermediate_size=args.hidden * 3 // 2,
        num_hidden_layers=args.layers,
        num_attention_heads=args.hidden // 64,
        global_attn_every_n_layers=3,
        local_attention=128,
        max_position_embeddings=8192,
        pad_token_id=ids["[PAD]"],
        cls_token_id=ids["[CLS]"],
        sep_token_id=ids["[SEP]"],
        bos_token_id=ids["[CLS]"],
        eos_token_id=ids["[SEP]"],
        attn_implementation="eager",
    )
    model = ModernBertModel(config).eval()
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    shutil.copyfile(args.tokenizer, out / "tokenizer.json")
    # transformers 5 names its own backend class, which transformers.js does not know; the
    # real ModernBERT's config names this one.
    tok_config = json.loads((out / "tokenizer_config.json").read_text())
    tok_config["tokenizer_class"] = "PreTrainedTokenizerFast"
    tok_config.pop("backend", None)
    (out / "tokenizer_config.json").write_text(json.dumps(tok_config, indent=2))

    sample = tok(["a sentence to trace the graph with", "another"], padding=True, return_tensors="pt")
    (out / "onnx").mkdir(exist_ok=True)
    batch = torch.export.Dim("batch")
    seq = torch.export.Dim("sequence")
    with torch.no_grad():
        torch.onnx.export(
            LastHidden(model),
            (sample["input_ids"], sample["attention_mask"]),
            str(out / "onnx" / "model.onnx"),
            input_names=["input_ids", "attention_mask"],
            output_names=["last_hidden_state"],
            dynamic_shapes={"input_ids": {0: batch, 1: seq}, "attention_mask": {0: batch, 1: seq}},
            dynamo=True,
            external_data=False,
        )
    print(f"wrote {out}: {sum(p.numel() for p in model.parameters())} parameters")


if __name__ == "__main__":
    main()
