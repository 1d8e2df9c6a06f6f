// Row gather: y[i] = x[index[i]] for i < p.rows (e.g. the [MASK] rows an MLM head runs on,
// or one row per sequence). An index >= p.src_rows writes a zero row instead of reading
// outside x (the host validates indices; this only keeps a bad one harmless).
// Bindings: 0 params, 1 x ([src_rows, hidden] ELEM), 2 index (u32 [rows]),
// 3 y ([rows, hidden] ELEM).
// Dispatch: one workgroup of 128 threads per output row (runtime::grid), columns strided.
#if F16
enable f16;
#endif

// Binding 0: `p`, the GatherParams of src/ops/gather.rs (gpu_params! writes its WGSL).
{{PARAMS}}
@group(0) @binding(1) var<storage, read> x: array<{{ELEM}}>;
@group(0) @binding(2) var<storage, read> index: array<u32>;
@group(0) @binding(3) var<storage, read_write> y: array<{{ELEM}}>;

@compute @workgroup_size(128)
fn gather_rows(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = wg.x + wg.y * nwg.x;
    if row >= p.rows {
        return;
    }
    let src = index[row];
    let dst = row * p.hidden;
    if src < p.src_rows {
        let at = src * p.hidden;
        for (var c = lid; c < p.hidden; c += 128u) {
            y[dst + c] = x[at + c];
        }
    } else {
        for (var c = lid; c < p.hidden; c += 128u) {
            y[dst + c] = {{ELEM}}(0.0);
        }
    }
}
