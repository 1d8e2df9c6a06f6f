// Top-k of a softmax over each row of logits [rows, vocab] (f32), k <= 64:
//   prob[i] = exp(x[i] - max) / sum_j exp(x[j] - max)           (f32, online max/sum)
//   out[row, r] = (index, prob) of the r-th largest logit, descending, ties -> lower index.
// Output layout: out is u32 [rows, k, 2], pairs (index, bitcast<u32>(prob)); slots past
// min(k, vocab) hold (0xffffffff, 0).
// Selection is a radix select on the composite key (order-preserving u32 of the logit,
// then vocab-1-index so lower indices rank higher): 8-bit digits from the top, one
// 256-bin histogram pass over the row per digit, stopping at the first digit whose chosen
// bin holds exactly the ranks still needed (typically 2-3 passes); ties on the logit are
// resolved by the index digits, so the k chosen are exact. A last pass collects the k
// winners into workgroup memory, where each is ranked against the others.
// Bindings: 0 params, 1 logits (f32), 2 out (u32).
// Dispatch: one workgroup of 256 threads (= histogram bins) per row (runtime::grid).

const WG: u32 = 256u;
const KMAX: u32 = 64u;
// Copies of the histogram, thread lid counting into copy lid % HCOPIES: logits crowd into a
// few bins of the top digit, and spreading them cuts same-address atomic contention.
const HCOPIES: u32 = 8u;
// -f32::MAX written exactly: browsers' WGSL compilers (Tint) refuse the rounded
// -3.40282347e38, which lies just past the f32 range.
const LOWEST: f32 = -3.40282346638528859811704183484516925440e38;

// Binding 0: `p`, the TopkParams of src/ops/topk.rs (gpu_params! writes its WGSL).
{{PARAMS}}
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<u32>;

var<workgroup> hist: array<atomic<u32>, HCOPIES * WG>; // [HCOPIES][WG]
var<workgroup> suffix: array<u32, WG>;
var<workgroup> red_m: array<f32, WG>;
var<workgroup> red_s: array<f32, WG>;
// (chosen bin, ranks still needed, bin holds exactly those, unused)
var<workgroup> pick: vec4<u32>;
var<workgroup> n_cand: atomic<u32>;
var<workgroup> cand_idx: array<u32, KMAX>;
var<workgroup> cand_val: array<f32, KMAX>;

// Order-preserving map f32 -> u32 (larger float, larger key); -0 maps like +0.
fn key_of(x: f32) -> u32 {
    let u = select(bitcast<u32>(x), 0u, x == 0.0);
    return select(u | 0x80000000u, ~u, (u >> 31u) != 0u);
}

fn clear_hist(lid: u32) {
    for (var c = 0u; c < HCOPIES; c++) {
        atomicStore(&hist[c * WG + lid], 0u);
    }
}

// a and b agree on the bits at and above `shift` (32: nothing to compare).
fn hi_eq(a: u32, b: u32, shift: u32) -> bool {
    return shift >= 32u || (a >> shift) == (b >> shift);
}

@compute @workgroup_size(256)
fn topk_softmax(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = wg.x + wg.y * nwg.x;
    if row >= p.rows {
        return;
    }
    let n = p.vocab;
    let base = row * n;
    let ndig = 4u + p.idx_digits;
    let hbase = (lid % HCOPIES) * WG;

    // Pass 0: softmax statistics (online max / sum) and the histogram of the top digit.
    clear_hist(lid);
    if lid == 0u {
        atomicStore(&n_cand, 0u);
    }
    workgroupBarrier();
    var m = LOWEST;
    var s = 0.0;
    for (var i = lid; i < n; i += WG) {
        let x = logits[base + i];
        if x > m {
            s = s * exp(m - x) + 1.0;
            m = x;
        } else {
            s += exp(x - m);
        }
        atomicAdd(&hist[hbase + (key_of(x) >> 24u)], 1u);
    }
    red_m[lid] = m;
    red_s[lid] = s;
    workgroupBarrier();
    for (var st = WG / 2u; st > 0u; st >>= 1u) {
        if lid < st {
            let m2 = red_m[lid + st];
            let mm = max(m, m2);
            s = s * exp(m - mm) + red_s[lid + st] * exp(m2 - mm);
            m = mm;
            red_m[lid] = m;
            red_s[lid] = s;
        }
        workgroupBarrier();
    }
    let row_max = red_m[0];
    let row_sum = red_s[0];

    var need = min(p.k, min(n, KMAX));
    var vprefix = 0u;
    var iprefix = 0u;
    var d = 0u;
    loop {
        if d > 0u {
            // Histogram of digit d over the elements whose higher digits equal the prefix.
            clear_hist(lid);
            workgroupBarrier();
            for (var i = lid; i < n; i += WG) {
                let key = key_of(logits[base + i]);
                if d < 4u {
                    let hi = 32u - 8u * d;
                    if (key >> hi) == (vprefix >> hi) {
                        atomicAdd(&hist[hbase + ((key >> (hi - 8u)) & 255u)], 1u);
                    }
                } else {
                    let rev = n - 1u - i;
                    let hi = 8u * (p.idx_digits - (d - 4u));
                    if key == vprefix && hi_eq(rev, iprefix, hi) {
                        atomicAdd(&hist[hbase + ((rev >> (hi - 8u)) & 255u)], 1u);
                    }
                }
            }
            workgroupBarrier();
        }
        // Suffix sums over the bins; the bin where the count from the top reaches `need`
        // holds the boundary.
        var h = 0u;
        for (var c = 0u; c < HCOPIES; c++) {
            h += atomicLoad(&hist[c * WG + lid]);
        }
        suffix[lid] = h;
        workgroupBarrier();
        for (var off = 1u; off < WG; off <<= 1u) {
            var t = 0u;
            if lid + off < WG {
                t = suffix[lid + off];
            }
            workgroupBarrier();
            suffix[lid] += t;
            workgroupBarrier();
        }
        let incl = suffix[lid];
        let above = incl - h;
        if above < need && need <= incl {
            pick = vec4<u32>(lid, need - above, select(0u, 1u, h == need - above), 0u);
        }
        let pk = workgroupUniformLoad(&pick);
        need = pk.y;
        if d < 4u {
            vprefix |= pk.x << (24u - 8u * d);
        } else {
            iprefix |= pk.x << (8u * (p.idx_digits - 1u - (d - 4u)));
        }
        if pk.z != 0u || d + 1u >= ndig {
            break;
        }
        d += 1u;
    }

    // Collect the winners: everything at or above the boundary on the digits resolved.
    for (var i = lid; i < n; i += WG) {
        let x = logits[base + i];
        let key = key_of(x);
        var take = false;
        if d < 4u {
            let lo = 24u - 8u * d;
            take = (key >> lo) >= (vprefix >> lo);
        } else {
            let lo = 8u * (p.idx_digits - 1u - (d - 4u));
            take = key > vprefix || (key == vprefix && ((n - 1u - i) >> lo) >= (iprefix >> lo));
        }
        if take {
            let slot = atomicAdd(&n_cand, 1u);
            if slot < KMAX {
                cand_idx[slot] = i;
                cand_val[slot] = x;
            }
        }
    }
    workgroupBarrier();
    let cnt = min(atomicLoad(&n_cand), KMAX);
    if lid < cnt {
        let vi = cand_val[lid];
        let ii = cand_idx[lid];
        var rank = 0u;
        for (var j = 0u; j < cnt; j++) {
            let vj = cand_val[j];
            if vj > vi || (vj == vi && cand_idx[j] < ii) {
                rank += 1u;
            }
        }
        if rank < p.k {
            let o = (row * p.k + rank) * 2u;
            out[o] = ii;
            out[o + 1u] = bitcast<u32>(exp(vi - row_max) / row_sum);
        }
    } else if lid < p.k {
        let o = (row * p.k + lid) * 2u;
        out[o] = 0xffffffffu;
        out[o + 1u] = 0u;
    }
}
