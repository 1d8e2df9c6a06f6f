// Rotary position embedding (GPT-NeoX "rotate_half"), in place on the packed QKV activation.
// Bindings: 0 params, 1 qkv [rows, 3H] ELEM (read_write; Q and K blocks are rotated, V is left
// alone), 2 positions [rows] u32 (restarting at 0 in every sequence).
// Dispatch: one invocation per (row, c < d/2), ceil(rows * d/2 / 64) workgroups of 64 spread
// over x/y (runtime::grid); each invocation computes sin/cos once and rotates that pair in the
// 2 * n_heads q/k heads of its row.
// Formula: phi = f32(p) * inv_freq[c] rounded to f32 exactly as the reference (HF) rounds it,
// x'[c] = x[c] cos phi - x[c+d/2] sin phi, x'[c+d/2] = x[c+d/2] cos phi + x[c] sin phi.
// inv_freq comes from the host (computed like HF: 1 / theta^(f32(2c)/f32(d)) in f32).
//
// Precision: see common/rope_angle.wgsl (the reference's f32 angle bit for bit, sin/cos to
// ~2e-7). The same rotation is fused into the Wqkv projection's store where its tiles hold
// whole heads (common/matmul_epilogue.wgsl, ROPE); this pass serves the others.
#if F16
enable f16;
#endif

// Binding 0: `p`, the RopeParams of src/ops/rope.rs (gpu_params! writes its WGSL).
{{PARAMS}}
@group(0) @binding(1) var<storage, read_write> qkv: array<{{ELEM}}>;
@group(0) @binding(2) var<storage, read> positions: array<u32>;

#include "common/rope_angle.wgsl"

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = (wg.x + wg.y * nwg.x) * 64u + lid;
    let row = i / p.half_dim;
    let c = i % p.half_dim;
    if row >= p.n_rows {
        return;
    }
    let inv_bits = p.inv_freq[c / 4u][c % 4u];
    let sc = sincos(angle(positions[row], inv_bits));
    var at = row * p.stride + c;
    // Q heads then K heads: 2 * n_heads blocks of head_dim columns.
    for (var h = 0u; h < 2u * p.n_heads; h++) {
        let x0 = f32(qkv[at]);
        let x1 = f32(qkv[at + p.half_dim]);
        qkv[at] = {{ELEM}}(x0 * sc.y - x1 * sc.x);
        qkv[at + p.half_dim] = {{ELEM}}(x1 * sc.y + x0 * sc.x);
        at += p.head_dim;
    }
}
