// Element-type conversion: y[i] = OUT(x[i]) for i < n, between f32 and f16 storage.
// Bindings: 0 params, 1 x (read, IN), 2 y (write, OUT). Dispatch: ceil(n / 256) workgroups
// of 256 spread over x/y (runtime::grid); linear id = wg.x + wg.y * num_workgroups.x.
#if F16
enable f16;
#endif

// Binding 0: `p`, the ConvertParams of src/ops/convert.rs (gpu_params! writes its WGSL).
{{PARAMS}}
@group(0) @binding(1) var<storage, read> x: array<{{IN}}>;
@group(0) @binding(2) var<storage, read_write> y: array<{{OUT}}>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
    let i = (wg.x + wg.y * nwg.x) * 256u + li;
    if i < p.n {
        y[i] = {{OUT}}(x[i]);
    }
}
