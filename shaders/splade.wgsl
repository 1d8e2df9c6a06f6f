// SPLADE pooling of MLM logits into one vocabulary-wide vector per sequence:
//   w(x) = log1p(relu(x))               act 0 (sentence-transformers "relu")
//   w(x) = log1p(log1p(relu(x)))        act 1 ("log1p_relu")
//   out[slot, c] = max or sum over the sequence's rows r of w(logits[r, c])
// A sequence's rows may come over several runs (chunks of rows): each row's slot word
// names its sequence's row of `out`, with bit 31 set on the sequence's first row. The
// first row starts the sequence from zero (every w >= 0, so 0 is also max's identity);
// any other row continues from what `out` holds, so one sequence spans chunks.
// Bindings: 0 params, 1 logits (f32 [rows, vocab]), 2 slots (u32 [rows]),
// 3 out (f32 [slots, vocab]).
// Dispatch: ceil(vocab / 256) workgroups of 256 threads (runtime::grid); thread c owns
// vocabulary column c and walks the chunk's rows in order, so no two threads write the
// same value and a sequence's running value stays in a register between its rows.

const WG: u32 = 256u;
const FIRST: u32 = 0x80000000u;

// Binding 0: `p`, the SpladeParams of src/ops/splade.rs (gpu_params! writes its WGSL).
{{PARAMS}}
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> slots: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

// log(1 + x) without the cancellation of 1 + x for small x (x >= 0).
fn log1p_(x: f32) -> f32 {
    let u = 1.0 + x;
    if u == 1.0 {
        return x;
    }
    return log(u) * (x / (u - 1.0));
}

fn weight(x: f32) -> f32 {
    let w = log1p_(max(x, 0.0));
    return select(w, log1p_(w), p.act == 1u);
}

@compute @workgroup_size(256)
fn splade_pool(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let c = (wg.x + wg.y * nwg.x) * WG + lid;
    if c >= p.vocab {
        return;
    }
    var cur = 0xffffffffu;
    var acc = 0.0;
    for (var r = 0u; r < p.rows; r++) {
        let word = slots[r];
        let slot = word & ~FIRST;
        if slot >= p.slots {
            continue;
        }
        if slot != cur {
            if cur != 0xffffffffu {
                out[cur * p.vocab + c] = acc;
            }
            cur = slot;
            acc = select(out[slot * p.vocab + c], 0.0, (word & FIRST) != 0u);
        } else if (word & FIRST) != 0u {
            acc = 0.0;
        }
        let w = weight(logits[r * p.vocab + c]);
        acc = select(acc + w, max(acc, w), p.mode == 0u);
    }
    if cur != 0xffffffffu {
        out[cur * p.vocab + c] = acc;
    }
}
