#!/usr/bin/env python3
"""Calls `wgbert serve --grpc-port` with grpcio, through stubs compiled from the project's
proto/tei.proto at run time (grpcio-tools), and prints what came back as one JSON object
(tests/serve_clients.rs compares it with the HTTP routes).

    grpc_client.py HOST:PORT PROTO_DIR KIND [KEY]     KIND: embedder | classifier | reranker | sparse

A call that fails is recorded as {"code": "INVALID_ARGUMENT", ...} instead of its answer.
"""
import importlib
import json
import os
import sys
import tempfile

import grpc
from grpc_tools import protoc


def stubs(proto_dir):
    out = tempfile.mkdtemp()
    proto = os.path.join(proto_dir, "tei.proto")
    rc = protoc.main(
        ["protoc", f"-I{proto_dir}", f"--python_out={out}", f"--grpc_python_out={out}", proto]
    )
    if rc != 0:
        raise SystemExit(f"compiling {proto} failed ({rc})")
    sys.path.insert(0, out)
    return importlib.import_module("tei_pb2"), importlib.import_module("tei_pb2_grpc")


def call(f, *args, **kwargs):
    try:
        return f(*args, **kwargs)
    except grpc.RpcError as e:
        return {"code": e.code().name, "details": e.details()}


def tokens(resp):
    return [
        {"id": t.id, "text": t.text, "special": t.special,
         "start": t.start if t.HasField("start") else None,
         "stop": t.stop if t.HasField("stop") else None}
        for t in resp.tokens
    ]


def main() -> None:
    target, proto_dir, kind = sys.argv[1], sys.argv[2], sys.argv[3]
    key = sys.argv[4] if len(sys.argv) > 4 else None
    pb, rpc = stubs(proto_dir)
    channel = grpc.insecure_channel(target)
    grpc.channel_ready_future(channel).result(timeout=60)
    meta = [("authorization", f"Bearer {key}")] if key else None
    info = rpc.InfoStub(channel)
    embed = rpc.EmbedStub(channel)
    predict = rpc.PredictStub(channel)
    rerank = rpc.RerankStub(channel)
    tok = rpc.TokenizeStub(channel)
    out = {}
    i = call(info.Info, pb.InfoRequest(), metadata=meta)
    out["info"] = i if isinstance(i, dict) else {
        "model_type": pb.ModelType.Name(i.model_type), "max_input_length": i.max_input_length,
        "max_client_batch_size": i.max_client_batch_size, "model_dtype": i.model_dtype,
    }
    if key:
        out["no_key"] = call(info.Info, pb.InfoRequest())
    if kind == "embedder":
        r = call(embed.Embed, pb.EmbedRequest(inputs="w5 w6 w7", truncate=True), metadata=meta)
        out["embed"] = list(r.embeddings) if not isinstance(r, dict) else r
        out["embed_tokens"] = r.metadata.compute_tokens if not isinstance(r, dict) else None
        r = call(embed.Embed, pb.EmbedRequest(inputs="w5 w6", normalize=False, dimensions=8),
                 metadata=meta)
        out["embed_raw8"] = list(r.embeddings) if not isinstance(r, dict) else r
        texts = ["w5", "w6 w7", "w8 w9 w10"]
        stream = embed.EmbedStream(iter(pb.EmbedRequest(inputs=t) for t in texts), metadata=meta)
        out["embed_stream"] = [list(r.embeddings) for r in stream]
        r = call(embed.EmbedAll, pb.EmbedAllRequest(inputs="w5 w6"), metadata=meta)
        out["embed_all"] = [list(t.embeddings) for t in r.token_embeddings]
        out["empty"] = call(embed.Embed, pb.EmbedRequest(inputs=""), metadata=meta)
        out["tokenize"] = tokens(call(tok.Tokenize, pb.EncodeRequest(
            inputs="w5 w6", add_special_tokens=True), metadata=meta))
        out["decode"] = call(tok.Decode, pb.DecodeRequest(
            ids=[1, 5, 6, 2], skip_special_tokens=True), metadata=meta).text
        out["predict_wrong_task"] = call(predict.Predict, pb.PredictRequest(inputs="w5"),
                                         metadata=meta)
    elif kind == "classifier":
        def preds(r):
            return [{"label": p.label, "score": p.score} for p in r.predictions]
        out["predict"] = preds(call(predict.Predict, pb.PredictRequest(inputs="w5 w6 w7"),
                                    metadata=meta))
        out["predict_pair"] = preds(call(predict.PredictPair, pb.PredictPairRequest(
            inputs=["w5 w6", "w7 w8"]), metadata=meta))
        out["predict_raw"] = preds(call(predict.Predict, pb.PredictRequest(
            inputs="w5 w6 w7", raw_scores=True), metadata=meta))
        out["predict_stream"] = [preds(r) for r in predict.PredictPairStream(
            iter([pb.PredictPairRequest(inputs=["w5", "w6"]),
                  pb.PredictPairRequest(inputs=["w7", "w8 w9"])]), metadata=meta)]
        out["bad_pair"] = call(predict.PredictPair, pb.PredictPairRequest(inputs=["w5"]),
                               metadata=meta)
    elif kind == "reranker":
        def ranks(r):
            return [{"index": x.index, "score": x.score,
                     "text": x.text if x.HasField("text") else None} for x in r.ranks]
        out["rerank"] = ranks(call(rerank.Rerank, pb.RerankRequest(
            query="w5 w6", texts=["w6 w7", "w8", "w9"], return_text=True), metadata=meta))
        # raw_scores and return_text are read from the stream's first message.
        out["rerank_stream"] = ranks(call(rerank.RerankStream, iter(
            pb.RerankStreamRequest(query="w5 w6", text=t, return_text=(i == 0))
            for i, t in enumerate(["w6 w7", "w8", "w9"])), metadata=meta))
    elif kind == "sparse":
        r = call(embed.EmbedSparse, pb.EmbedSparseRequest(inputs="w5 w6 w7"), metadata=meta)
        out["embed_sparse"] = [{"index": v.index, "value": v.value} for v in r.sparse_embeddings]
    else:
        raise SystemExit(f"unknown kind {kind!r}")
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
