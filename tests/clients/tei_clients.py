#!/usr/bin/env python3
"""Calls a running `wgbert serve` the way users' client libraries do, and prints what they
got back as one JSON object on stdout (tests/serve_clients.rs compares it with the server's
own routes).

    tei_clients.py BASE_URL KIND     KIND: embedder | classifier | mlm

embedder:   huggingface_hub.InferenceClient(BASE_URL).feature_extraction and
            .sentence_similarity at the root URL; openai.OpenAI(base_url=BASE_URL/v1)
            .embeddings.create.
classifier: InferenceClient.text_classification (all labels, and top_k=1).
mlm:        InferenceClient.fill_mask (default top_k, and top_k=3).
"""
import json
import sys

from huggingface_hub import InferenceClient


def main() -> None:
    base, kind = sys.argv[1], sys.argv[2]
    client = InferenceClient(base)
    out = {}
    if kind == "embedder":
        out["feature_extraction"] = client.feature_extraction("w5 w6 w7").tolist()
        out["sentence_similarity"] = client.sentence_similarity(
            "w5 w6", other_sentences=["w5 w7", "w9 w10 w11"]
        )
        from openai import OpenAI

        oa = OpenAI(base_url=f"{base}/v1", api_key="unused")
        r = oa.embeddings.create(input=["w5 w6 w7", "w8"], model="wgbert")
        out["openai"] = [d.embedding for d in r.data]
    elif kind == "classifier":
        out["text_classification"] = [
            {"label": e.label, "score": e.score} for e in client.text_classification("w5 w6 w7")
        ]
        out["text_classification_top1"] = [
            {"label": e.label, "score": e.score}
            for e in client.text_classification("w5 w6 w7", top_k=1)
        ]
    elif kind == "mlm":
        for key, kwargs in [("fill_mask", {}), ("fill_mask_top3", {"top_k": 3})]:
            out[key] = [
                {"score": e.score, "token": e.token, "token_str": e.token_str, "sequence": e.sequence}
                for e in client.fill_mask("w5 [MASK] w7", **kwargs)
            ]
    else:
        raise SystemExit(f"unknown kind {kind!r}")
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
