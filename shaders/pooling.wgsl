// Pooling of each packed sequence to one f32 vector, optionally L2-normalised:
//   cls:  out[s] = x[cu[s]]
//   mean: out[s] = sum_{t in cu[s]..cu[s+1]} x[t] / (cu[s+1] - cu[s])
//   normalize: out[s] /= max(||out[s]||_2, 1e-12)     (torch F.normalize)
// An empty sequence pools to zeros. Sequence bounds are clamped to p.rows, so a bad
// cu_seqlens never reads past the activations.
// Bindings: 0 params, 1 x ([rows, hidden] ELEM), 2 cu_seqlens (u32 [segments + 1]),
// 3 out ([segments, hidden] f32).
// Dispatch: one workgroup of RN_WG threads per sequence (runtime::grid); thread lid owns
// columns lid + j * RN_WG and walks the sequence's rows, accumulating in f32.
#if F16
enable f16;
#endif

#include "common/rownorm.wgsl"

// Binding 0: `p`, the PoolParams of src/ops/pooling.rs (gpu_params! writes its WGSL).
{{PARAMS}}
@group(0) @binding(1) var<storage, read> x: array<{{ELEM}}>;
@group(0) @binding(2) var<storage, read> cu_seqlens: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(128)
fn pool(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let seg = wg.x + wg.y * nwg.x;
    if seg >= p.segments {
        return;
    }
    let start = min(cu_seqlens[seg], p.rows);
    let end = max(min(cu_seqlens[seg + 1u], p.rows), start);
    let last = select(end, min(start + 1u, end), p.mode == 0u);
    var v: array<f32, RN_PT>;
    for (var j = 0u; j < RN_PT; j++) {
        v[j] = 0.0;
    }
    for (var t = start; t < last; t++) {
        let base = t * p.hidden;
        for (var j = 0u; j < RN_PT; j++) {
            let c = lid + j * RN_WG;
            if c < p.hidden {
                v[j] += f32(x[base + c]);
            }
        }
    }
    var scale = 1.0 / f32(max(last - start, 1u));
    if p.normalize != 0u {
        var q = 0.0;
        for (var j = 0u; j < RN_PT; j++) {
            q += v[j] * v[j];
        }
        let norm = sqrt(rn_sum(q, lid)) * scale;
        scale /= max(norm, 1e-12);
    }
    let o = seg * p.hidden;
    for (var j = 0u; j < RN_PT; j++) {
        let c = lid + j * RN_WG;
        if c < p.hidden {
            out[o + c] = v[j] * scale;
        }
    }
}
