// Varlen flash attention over packed sequences, global or banded (|i - j| <= window).
// Parameters, bindings and dispatch: common/attention_span.wgsl. Workgroups past a sequence's
// end or past the last sequence return at once (workgroup-uniform).
// One invocation per query row: q and the output accumulator live in registers (D floats each);
// K and V tiles of BC keys are staged in workgroup memory (2 * BC * D * 4 bytes). BR (query
// rows, the workgroup size) and BC are the tile configuration (ops::attention::Tiles).
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
// Keys per online-softmax update (divides BC).
const CH: u32 = 8u;
// Masked scores sit below the running-max floor so exp2(masked - max) is exactly 0.
const NEG_INIT: f32 = -1.0e30;
const NEG_MASK: f32 = -2.0e30;

#include "common/attention_span.wgsl"

var<workgroup> k_tile: array<vec4<f32>, BC * D4>;
var<workgroup> v_tile: array<vec4<f32>, BC * D4>;

@compute @workgroup_size({{BR}})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let sp = span(wg, nwg, BR);
    if !sp.live {
        return;
    }
    let qi = sp.q0 + lid;
    let live = qi < sp.len;
    let h4 = p.qkv_stride / 3u;
    let col = sp.head * D4;
    var q: array<vec4<f32>, D4>;
    var o: array<vec4<f32>, D4>;
    let q_at = (sp.start + min(qi, sp.len - 1u)) * p.qkv_stride + col;
    for (var d = 0u; d < D4; d++) {
        q[d] = vec4<f32>(qkv[q_at + d]) * p.scale;
        o[d] = vec4<f32>(0.0);
    }
    var m = NEG_INIT;
    var l = 0.0;

    for (var kt = sp.k_begin; kt < sp.k_end; kt += BC) {
        // The previous tile has been consumed by every invocation.
        workgroupBarrier();
        for (var i = lid; i < BC * D4; i += BR) {
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
        if live {
            for (var c0 = 0u; c0 < n_keys; c0 += CH) {
                var s: array<f32, CH>;
                var cmax = NEG_INIT;
                for (var jj = 0u; jj < CH; jj++) {
                    let j = c0 + jj;
                    let key = kt + j;
                    var acc = vec4<f32>(0.0);
                    for (var d = 0u; d < D4; d++) {
                        acc = fma(q[d], k_tile[j * D4 + d], acc);
                    }
                    let dist = select(qi - key, key - qi, key > qi);
                    let allowed = j < n_keys && (p.windowed == 0u || dist <= p.window);
                    let sc = select(NEG_MASK, acc.x + acc.y + acc.z + acc.w, allowed);
                    s[jj] = sc;
                    cmax = max(cmax, sc);
                }
                let m_new = max(m, cmax);
                let corr = exp2(m - m_new);
                m = m_new;
                l = l * corr;
                for (var d = 0u; d < D4; d++) {
                    o[d] = o[d] * corr;
                }
                for (var jj = 0u; jj < CH; jj++) {
                    let pj = exp2(s[jj] - m_new);
                    l += pj;
                    let base = (c0 + jj) * D4;
                    for (var d = 0u; d < D4; d++) {
                        o[d] = fma(vec4<f32>(pj), v_tile[base + d], o[d]);
                    }
                }
            }
        }
    }

    if live {
        let inv = select(0.0, 1.0 / l, l > 0.0);
        let o_at = (sp.start + qi) * p.out_stride + col;
        for (var d = 0u; d < D4; d++) {
            out[o_at + d] = vec4<{{ELEM}}>(o[d] * inv);
        }
    }
}
