// Matmul I/O shared by shaders/matmul.wgsl and shaders/matmul_subgroup.wgsl: the parameters,
// the bindings and the epilogue that turns f32 accumulators into one stored output element.
// Bindings: 0 params, 1 x [rows, k], 2 w [n, k] ([2n, k] for GeGLU), 3 y [rows, n] (written),
// then, when present, bias [n] ([2n] for GeGLU) and residual [rows, n] at the bindings
// given by the values of the BIAS and RESIDUAL defines (4, or 4 and 5).
// Epilogue: v = x.W[col] (+ bias[col]);
//   GEGLU:    y = act(v) * (x.W[n + col] (+ bias[n + col]))
//   ACT:      y = act(v)
//   RESIDUAL: y = v + residual[row, col]
// with act = act_ACT from common/math.wgsl (the ACT define). Everything is f32 until the final store.

// math.wgsl only with an activation: its comments name the ACT define.
#if ACT
#include "common/math.wgsl"
#endif

// Binding 0: `p`, the MatmulParams of src/ops/matmul/kernel.rs (gpu_params! writes its WGSL).
{{PARAMS}}
#if VEC
// VEC (K a multiple of 4): x and w read four consecutive k at a time.
@group(0) @binding(1) var<storage, read> x: array<vec4<{{ELEM}}>>;
@group(0) @binding(2) var<storage, read> w: array<vec4<{{ELEM}}>>;
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

// Stores y[row, col] from a = x.W[col] and (GeGLU only) g = x.W[n + col].
fn store(row: u32, col: u32, a: f32, g: f32) {
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
    v += f32(residual[row * p.n + col]);
#endif
    y[row * p.n + col] = {{ELEM}}(v);
}
