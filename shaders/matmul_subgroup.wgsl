// Subgroup matmul for few rows (GEMV-like): Y[T, N] = epilogue(X[T, K] . W[N, K]^T),
// f32 or f16 storage (ELEM), f32 accumulation. Any T, K, N; fastest when T is small (the MLM
// head's [MASK] rows, one row per sequence), where the tiled kernel has too few tiles.
// Bindings: see common/matmul_epilogue.wgsl (0 params, 1 x, 2 w, 3 y, then bias/residual).
// Dispatch: one workgroup of 64 threads per COLS = 4 output columns, p.tiles = ceil(N / 4)
// workgroups spread over x/y (runtime::grid).
// Each subgroup takes the columns subgroup_id, + num_subgroups, ... of its workgroup's four.
// For one column it walks the rows four at a time: lane l of the L active lanes accumulates
// k = l, l + L, ... (coalesced reads of W's row and of the four X rows), subgroupAdd sums
// the lanes and the first lane applies the epilogue. L and l are counted with subgroup
// arithmetic, so any subgroup size (4..128, partial subgroups included) gives the same sums.
// W is read once per four rows; rows past T repeat the last row and are not stored.

#if F16
enable f16;
#endif
#include "common/matmul_epilogue.wgsl"

const COLS: u32 = 4u;

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(subgroup_id) sg_id: u32,
    @builtin(num_subgroups) n_sg: u32,
) {
    let blk = wid.x + wid.y * nwg.x;
    if blk >= p.tiles || p.rows == 0u {
        return;
    }
    // Active lanes and this lane's rank among them (not subgroup_size / subgroup_invocation_id,
    // which overstate a partial subgroup).
    let lanes = subgroupAdd(1u);
    let lane = subgroupExclusiveAdd(1u);
    let last = p.rows - 1u;
    for (var c = sg_id; c < COLS; c += n_sg) {
        let col = blk * COLS + c;
        if col >= p.n {
            break;
        }
        let wa = col * p.k;
#if GEGLU
        let wb = (p.n + col) * p.k;
#endif
        for (var r0 = 0u; r0 < p.rows; r0 += 4u) {
            let x0 = r0 * p.k;
            let x1 = min(r0 + 1u, last) * p.k;
            let x2 = min(r0 + 2u, last) * p.k;
            let x3 = min(r0 + 3u, last) * p.k;
            var s = vec4<f32>(0.0);
            var g = vec4<f32>(0.0);
            for (var k = lane; k < p.k; k += lanes) {
                let xv = vec4<f32>(f32(x[x0 + k]), f32(x[x1 + k]), f32(x[x2 + k]), f32(x[x3 + k]));
                s = fma(xv, vec4<f32>(f32(w[wa + k])), s);
#if GEGLU
                g = fma(xv, vec4<f32>(f32(w[wb + k])), g);
#endif
            }
            s = subgroupAdd(s);
#if GEGLU
            g = subgroupAdd(g);
#endif
            if lane == 0u {
                let nr = min(4u, p.rows - r0);
                for (var i = 0u; i < nr; i++) {
                    store(r0 + i, col, s[i], g[i]);
                }
            }
        }
    }
}
