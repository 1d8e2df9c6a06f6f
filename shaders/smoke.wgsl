// Smoke kernel of the runtime tests: y[i] = x[i] * scale + offset, over n elements.
// Bindings: 0 params, 1 x (read), 2 y (write). Dispatch: ceil(n / 64) workgroups of 64,
// spread over x/y (runtime::grid).

// Binding 0: `p`, the SmokeParams of src/runtime/params.rs (gpu_params! writes its WGSL).
{{PARAMS}}
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 64u;
    if i >= p.n {
        return;
    }
    y[i] = x[i] * p.scale + p.offset;
}
