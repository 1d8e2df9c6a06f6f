// LayerNorm over rows: y = (h - mean) / sqrt(var + eps) * w (+ b), population variance, eps
// inside the sqrt, all statistics in f32; ELEM storage.
// Entry `layernorm`:     h = x.                 Bindings: 0 params, 1 x, 2 w, 3 b, 4 y.
// Entry `add_layernorm`: h = x + r, also written to `sum` (the new residual stream, rounded to
//                        ELEM first so y normalises exactly the stored h).
//                        Bindings: 0 params, 1 x, 2 r, 3 w, 4 b, 5 sum, 6 y.
// `b` is read only when p.has_bias != 0 (the host binds `w` there otherwise).
// Dispatch: one workgroup of RN_WG threads per row, rows spread over x/y (runtime::grid);
// thread lid owns columns lid + j * RN_WG, j < PT (see common/rownorm.wgsl).
#if F16
enable f16;
#endif

#include "common/rownorm.wgsl"

// Binding 0: `p`, the LnParams of src/ops/layernorm.rs (gpu_params! writes its WGSL).
{{PARAMS}}
@group(0) @binding(1) var<storage, read> x: array<{{ELEM}}>;
#if RESIDUAL
@group(0) @binding(2) var<storage, read> r: array<{{ELEM}}>;
@group(0) @binding(3) var<storage, read> w: array<{{ELEM}}>;
@group(0) @binding(4) var<storage, read> b: array<{{ELEM}}>;
@group(0) @binding(5) var<storage, read_write> sum: array<{{ELEM}}>;
@group(0) @binding(6) var<storage, read_write> y: array<{{ELEM}}>;
#else
@group(0) @binding(2) var<storage, read> w: array<{{ELEM}}>;
@group(0) @binding(3) var<storage, read> b: array<{{ELEM}}>;
@group(0) @binding(4) var<storage, read_write> y: array<{{ELEM}}>;
#endif

fn write_normalised(v: ptr<function, array<f32, RN_PT>>, lid: u32, base: u32, st: vec2<f32>) {
    for (var j = 0u; j < RN_PT; j++) {
        let c = lid + j * RN_WG;
        if c < p.hidden {
            var o = ((*v)[j] - st.x) * st.y * f32(w[c]);
            if p.has_bias != 0u {
                o += f32(b[c]);
            }
            y[base + c] = {{ELEM}}(o);
        }
    }
}

@compute @workgroup_size(128)
#if RESIDUAL
fn add_layernorm(
#else
fn layernorm(
#endif
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
    let base = row * p.hidden;
    var v: array<f32, RN_PT>;
    // `c <= last`, not `c < p.hidden`: a test of another form than write_normalised's, so
    // the compiler does not keep its PT outcomes across the barriers for it (on NVIDIA,
    // predicates spilled to registers).
    let last = p.hidden - 1u;
    for (var j = 0u; j < RN_PT; j++) {
        let c = lid + j * RN_WG;
        v[j] = 0.0;
        if c <= last {
#if RESIDUAL
            let h = {{ELEM}}(f32(x[base + c]) + f32(r[base + c]));
            sum[base + c] = h;
            v[j] = f32(h);
#else
            v[j] = f32(x[base + c]);
#endif
        }
    }
    let st = rn_stats(&v, lid, p.hidden, p.eps);
    write_normalised(&v, lid, base, st);
}
