"""What a large encode costs in memory: the result array plus about one chunk, not a
multiple of the result. Measured in a fresh process (ru_maxrss, the peak resident size) after
a warm-up that builds the batch plans: the peak may grow by the array's size and a margin,
where results copied four times on their way to numpy (as before) grew it by four arrays."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import expected

CHILD = r"""
import json, resource, sys
import numpy as np
import wgbert

model, n = sys.argv[1], int(sys.argv[2])
words = ["the", "cat", "sat", "on", "mat", "paris", "capital", "france", "dog", "city"]
texts = [" ".join(words[(i * 7 + k) % len(words)] for k in range(3 + i % 40)) for i in range(n)]
enc = wgbert.Encoder(model, dtype="f32")
warm = enc.encode(texts[:1500], output_value="token_embeddings", batch_size=2000)
del warm
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
out = enc.encode(texts, output_value="token_embeddings", batch_size=2000)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
result = sum(a.nbytes for a in out)
print(json.dumps({"before": before, "after": after, "result": result}))
"""


def test_encode_holds_the_result_about_once():
    model = str(expected("st_mean_dense")[0])
    out = subprocess.run(
        [sys.executable, "-c", CHILD, model, "5000"],
        capture_output=True, text=True, timeout=600, check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    m = json.loads(out.stdout.strip().splitlines()[-1])
    grew = m["after"] - m["before"]
    # 5,000 texts of 5-44 tokens, 32 floats each: about 16 MB.
    assert m["result"] > 15e6, m
    print(f"result {m['result'] / 1e6:.1f} MB, peak grew {grew / 1e6:.1f} MB")
    assert grew < 1.6 * m["result"], (
        f"the peak grew by {grew / 1e6:.1f} MB for a result of {m['result'] / 1e6:.1f} MB"
    )
