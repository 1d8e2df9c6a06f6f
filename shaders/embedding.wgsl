// Token embedding gather fused with LayerNorm: y[t] = LN(E[ids[t]]) * w (+ b), LN as in
// layernorm.wgsl (population variance, eps inside the sqrt, f32 statistics), ELEM storage.
// An id >= vocab never reads outside E: its row is taken as zeros, so y[t] = b (or 0). The
// host validates ids before a run; this only keeps a bad id from reading foreign memory.
// A table held in row pieces runs one step per piece: E holds rows p.first..p.first + p.vocab
// and the step writes only the tokens whose ids are among them; the last piece (p.tail) also
// writes the ids past its end. Other tokens' workgroups return at once (a whole workgroup
// reads the same id, so the return is uniform).
// Bindings: 0 params, 1 ids (u32 [T]), 2 E ([vocab, hidden]), 3 w, 4 b, 5 y ([T, hidden]).
// `b` is read only when p.has_bias != 0 (the host binds `w` there otherwise).
// Dispatch: one workgroup of RN_WG threads per token, spread over x/y (runtime::grid).
#if F16
enable f16;
#endif

#include "common/rownorm.wgsl"

// Binding 0: `p`, the EmbedParams of src/ops/embedding.rs (gpu_params! writes its WGSL).
{{PARAMS}}
@group(0) @binding(1) var<storage, read> ids: array<u32>;
@group(0) @binding(2) var<storage, read> table: array<{{ELEM}}>;
@group(0) @binding(3) var<storage, read> w: array<{{ELEM}}>;
@group(0) @binding(4) var<storage, read> b: array<{{ELEM}}>;
@group(0) @binding(5) var<storage, read_write> y: array<{{ELEM}}>;

@compute @workgroup_size(128)
fn embed_layernorm(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
#if SUBGROUP
    @builtin(subgroup_id) sg_id: u32,
    @builtin(num_subgroups) n_sg: u32,
    @builtin(subgroup_invocation_id) sg_lane: u32,
#endif
) {
#if SUBGROUP
    rn_sg = vec3<u32>(sg_id, n_sg, sg_lane);
#endif
    let row = wg.x + wg.y * nwg.x;
    if row >= p.rows {
        return;
    }
    let id = ids[row];
    if id < p.first || (id - p.first >= p.vocab && p.tail == 0u) {
        return;
    }
    let valid = id - p.first < p.vocab;
    let src = select(0u, id - p.first, valid) * p.hidden;
    var v: array<f32, RN_PT>;
    for (var j = 0u; j < RN_PT; j++) {
        let c = lid + j * RN_WG;
        v[j] = 0.0;
        if valid && c < p.hidden {
            v[j] = f32(table[src + c]);
        }
    }
    let st = rn_stats(&v, lid, p.hidden, p.eps);
    let base = row * p.hidden;
    for (var j = 0u; j < RN_PT; j++) {
        let c = lid + j * RN_WG;
        if c < p.hidden {
            var o = (v[j] - st.x) * st.y * f32(w[c]);
            if p.has_bias != 0u {
                o += f32(b[c]);
            }
            y[base + c] = {{ELEM}}(o);
        }
    }
}
