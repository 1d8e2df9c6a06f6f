// Varlen flash attention over packed sequences, global or banded (|i - j| <= window).
// Parameters, bindings and dispatch: common/attention_span.wgsl. Workgroups past a sequence's
// end or past the last sequence return at once (workgroup-uniform).
// LANES consecutive invocations per query row (BR rows, WG = BR LANES invocations), each
// holding D / LANES columns of q and of the output accumulator in registers (16 floats each
// at every head size: LANES = D / 16), so no head size runs out of registers; the partial
// dot products of a row's lanes are summed with subgroup shuffles (SUBGROUP: the row's lanes
// are in one subgroup, which has LANES lanes or more) or through workgroup memory
// (SHARED_SUMS: any adapter; WG * CH * 4 more bytes). K and V tiles of BC keys are staged in f32 in workgroup memory
// (2 * BC * D * 4 bytes). BR and BC are the tile configuration (ops::attention::Tiles).
// Every invocation runs the same key loop (rows past the sequence compute on its last row's
// query and store nothing), so barriers and shuffles are in uniform control flow.
// Only the key tiles that intersect [q0 - window, q_last + window] are visited, so a banded
// layer costs O(S * (BR + 2 * window)) instead of O(S^2); no score matrix is ever stored.
// Formula: o_i = sum_j softmax_j(q_i . k_j / sqrt(D)) v_j over the allowed keys j of the same
// sequence (within the band, and below key_lens[s] when key-limited), online softmax in f32
// (base 2: q is pre-scaled by log2(e) / sqrt(D)); a query with no allowed key writes zeros.
#if F16
enable f16;
#endif

const D4: u32 = {{HEAD_DIM}}u / 4u;
const BR: u32 = {{BR}}u;
const BC: u32 = {{BC}}u;
const LANES: u32 = {{LANES}}u;
const WG: u32 = BR * LANES;
// vec4 columns of q and o per lane.
const DL4: u32 = D4 / LANES;
// Keys per online-softmax update (divides BC).
const CH: u32 = 8u;
// Masked scores sit below the running-max floor so exp2(masked - max) is exactly 0.
const NEG_INIT: f32 = -1.0e30;
const NEG_MASK: f32 = -2.0e30;

#include "common/attention_span.wgsl"

var<workgroup> k_tile: array<vec4<f32>, BC * D4>;
var<workgroup> v_tile: array<vec4<f32>, BC * D4>;

#if SUBGROUP
// Row sums of the lanes' partial scores: a butterfly over the row's LANES lanes.
fn row_sums(part: array<f32, CH>, lid: u32) -> array<f32, CH> {
    var s = part;
    for (var x = 1u; x < LANES; x <<= 1u) {
        for (var j = 0u; j < CH; j++) {
            s[j] += subgroupShuffleXor(s[j], x);
        }
    }
    return s;
}
#else
#if SHARED_SUMS
var<workgroup> partials: array<array<f32, CH>, WG>;

// Row sums of the lanes' partial scores through workgroup memory (two barriers).
fn row_sums(part: array<f32, CH>, lid: u32) -> array<f32, CH> {
    partials[lid] = part;
    workgroupBarrier();
    var s: array<f32, CH>;
    let first = lid - lid % LANES;
    for (var x = 0u; x < LANES; x++) {
        let o = partials[first + x];
        for (var j = 0u; j < CH; j++) {
            s[j] += o[j];
        }
    }
    // Every lane has read the partials before the next chunk overwrites them.
    workgroupBarrier();
    return s;
}
#else
// One lane per row: its partial scores are the scores.
fn row_sums(part: array<f32, CH>, lid: u32) -> array<f32, CH> {
    return part;
}
#endif
#endif

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let sp = span(wg, nwg, BR);
    if !sp.live {
        return;
    }
    let row = lid / LANES;
    // This lane's first vec4 column of the head.
    let c0 = (lid % LANES) * DL4;
    let qi = sp.q0 + row;
    let h4 = p.qkv_stride / 3u;
    let col = sp.head * D4;
    var q: array<vec4<f32>, DL4>;
    var o: array<vec4<f32>, DL4>;
    let q_at = (sp.start + min(qi, sp.len - 1u)) * p.qkv_stride + col + c0;
    for (var d = 0u; d < DL4; d++) {
        q[d] = vec4<f32>(qkv[q_at + d]) * p.scale;
        o[d] = vec4<f32>(0.0);
    }
    var m = NEG_INIT;
    var l = 0.0;

    for (var kt = sp.k_begin; kt < sp.k_end; kt += BC) {
        // The previous tile has been consumed by every invocation.
        workgroupBarrier();
        for (var i = lid; i < BC * D4; i += WG) {
            let key = kt + i / D4;
            var kv = vec4<f32>(0.0);
            var vv = vec4<f32>(0.0);
            if key < sp.k_end {
                let at = (sp.start + key) * p.qkv_stride + col + i % D4;
                kv = vec4<f32>(qkv[at + h4]);
                vv = vec4<f32>(qkv[at + 2u * h4]);
            }
            k_tile[i] = kv;
            v_tile[i] = vv;
        }
        workgroupBarrier();
        let n_keys = min(BC, sp.k_end - kt);
        for (var j0 = 0u; j0 < n_keys; j0 += CH) {
            var part: array<f32, CH>;
            for (var jj = 0u; jj < CH; jj++) {
                let base = (j0 + jj) * D4 + c0;
                var acc = vec4<f32>(0.0);
                for (var d = 0u; d < DL4; d++) {
                    acc = fma(q[d], k_tile[base + d], acc);
                }
                part[jj] = acc.x + acc.y + acc.z + acc.w;
            }
            var s = row_sums(part, lid);
            var cmax = NEG_INIT;
            for (var jj = 0u; jj < CH; jj++) {
                let key = kt + j0 + jj;
                let dist = select(qi - key, key - qi, key > qi);
                let allowed = j0 + jj < n_keys && (p.windowed == 0u || dist <= p.window);
                s[jj] = select(NEG_MASK, s[jj], allowed);
                cmax = max(cmax, s[jj]);
            }
            let m_new = max(m, cmax);
            let corr = exp2(m - m_new);
            m = m_new;
            l = l * corr;
            for (var d = 0u; d < DL4; d++) {
                o[d] = o[d] * corr;
            }
            for (var jj = 0u; jj < CH; jj++) {
                let pj = exp2(s[jj] - m_new);
                l += pj;
                let base = (j0 + jj) * D4 + c0;
                for (var d = 0u; d < DL4; d++) {
                    o[d] = fma(vec4<f32>(pj), v_tile[base + d], o[d]);
                }
            }
        }
    }

    if qi < sp.len {
        let inv = select(0.0, 1.0 / l, l > 0.0);
        let o_at = (sp.start + qi) * p.out_stride + col + c0;
        for (var d = 0u; d < DL4; d++) {
            out[o_at + d] = vec4<{{ELEM}}>(o[d] * inv);
        }
    }
}
