// Matmul I/O shared by shaders/matmul.wgsl and shaders/matmul_subgroup.wgsl: the parameters,
// the bindings and the epilogue that turns f32 accumulators into one stored output element.
// Bindings: 0 params, 1 x [rows, k], 2 w [n, k] ([2n, k] for GeGLU), 3 y [rows, ldy] (columns
// col0..col0 + n written), then, when present, bias [n] ([2n] for GeGLU) and residual
// [rows, ldy] at the bindings given by the values of the BIAS and RESIDUAL defines (4, or 4
// and 5). ldy = n and col0 = 0 unless the weight is one row piece of a larger one, whose
// product fills its own columns of a wider output (ops::matmul::OutCols).
// Epilogue: v = x.W[col] (+ bias[col]);
//   GEGLU:    y = act(v) * (x.W[n + col] (+ bias[n + col]))
//   ACT:      y = act(v)
//   RESIDUAL: y = v + residual[row, col]
//   ROPE:     the Wqkv projection of attention (y = [Q | K | V], heads of ROPE_D columns):
//             columns of Q and K are rotated, c < d/2 of a head: y = v cos - v' sin, else
//             y = v cos + v' sin, with v' = x.W[partner] (+ bias[partner]) passed as g, the
//             partner column (rope_partner) d/2 away in the same head, and the angle of
//             the row's position (binding ROPE) and frequency rope_freq[c % (d/2)] (binding
//             ROPE_FREQ, f32 bits); V columns are stored as they are. The calling kernel's
//             tiles hold whole heads (matmul::rope_fusable).
// with act = act_ACT from common/math.wgsl (the ACT define). Everything is f32 until the final store.

// math.wgsl only with an activation: its comments name the ACT define.
#if ACT
#include "common/math.wgsl"
#endif

// Binding 0: `p`, the MatmulParams of src/ops/matmul/kernel.rs (gpu_params! writes its WGSL).
{{PARAMS}}
#if VEC
#if VEC8
// VEC8 (f16, K a multiple of 8): x and w read eight consecutive k (16 bytes) at a time.
@group(0) @binding(1) var<storage, read> x: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read> w: array<vec4<u32>>;
#else
// VEC (K a multiple of 4): x and w read four consecutive k at a time.
@group(0) @binding(1) var<storage, read> x: array<vec4<{{ELEM}}>>;
@group(0) @binding(2) var<storage, read> w: array<vec4<{{ELEM}}>>;
#endif
#else
@group(0) @binding(1) var<storage, read> x: array<{{ELEM}}>;
@group(0) @binding(2) var<storage, read> w: array<{{ELEM}}>;
#endif
@group(0) @binding(3) var<storage, read_write> y: array<{{ELEM}}>;
#if BIAS
@group(0) @binding({{BIAS}}) var<storage, read> bias: array<{{ELEM}}>;
#endif
#if RESIDUAL
@group(0) @binding({{RESIDUAL}}) var<storage, read> residual: array<{{ELEM}}>;
#endif
#if ROPE
#include "common/rope_angle.wgsl"
@group(0) @binding({{ROPE}}) var<storage, read> positions: array<u32>;
@group(0) @binding({{ROPE_FREQ}}) var<storage, read> rope_freq: array<u32>;
const ROPE_D: u32 = {{ROPE_D}}u;

// The column d/2 away from `col` in its head (heads start at multiples of ROPE_D).
fn rope_partner(col: u32) -> u32 {
    return select(col - ROPE_D / 2u, col + ROPE_D / 2u, col % ROPE_D < ROPE_D / 2u);
}
#endif

// Stores y[row, col] from a = x.W[col] and (GeGLU only) g = x.W[n + col].
fn store(row: u32, col: u32, a: f32, g: f32) {
    let at = row * p.ldy + p.col0 + col;
    var v = a;
#if BIAS
    v += f32(bias[col]);
#endif
#if GEGLU
    var gate = g;
#if BIAS
    gate += f32(bias[p.n + col]);
#endif
    v = act_{{ACT}}(v) * gate;
#else
#if ACT
    v = act_{{ACT}}(v);
#endif
#endif
#if RESIDUAL
    v += f32(residual[at]);
#endif
#if ROPE
    // Q and K: the first two thirds of the columns.
    if col < 2u * (p.n / 3u) {
        var partner = g;
#if BIAS
        partner += f32(bias[rope_partner(col)]);
#endif
        let c = col % ROPE_D;
        let sc = sincos(angle(positions[row], rope_freq[c % (ROPE_D / 2u)]));
        v = select(v * sc.y + partner * sc.x, v * sc.y - partner * sc.x, c < ROPE_D / 2u);
    }
#endif
    y[at] = {{ELEM}}(v);
}
