// Tiled matmul: Y[T, N] = epilogue(X[T, K] . W[N, K]^T), W in PyTorch [out, in] layout,
// f32 or f16 storage (ELEM), f32 accumulation. Any T, K, N.
// Bindings: see common/matmul_epilogue.wgsl (0 params, 1 x, 2 w, 3 y, then bias/residual).
// Dispatch: one workgroup of 16x16 threads per output tile of 64 rows x 64 columns (64 x 32
// for GeGLU: the tile's 64 W rows are the 32 input rows n0.. and the 32 gate rows I+n0..),
// p.tiles = ceil(T/64) * p.tiles_n workgroups spread over x/y (runtime::grid);
// tile = m_tile * tiles_n + n_tile, so neighbouring workgroups share their X rows.
// Thread (tx, ty) owns rows ty + 16i and tile columns tx + 16j (i, j < 4): shared-memory
// reads are broadcasts or consecutive, stores coalesce, and for GeGLU columns j = 0, 1 pair
// with their gates j = 2, 3 in the same thread. K advances 16 at a time; both tiles are
// stored k-major with a row stride of 65 so the transposing stores do not conflict.
// Rows, columns and k past the edges load as 0 and are never stored.

#if F16
enable f16;
#endif
#include "common/matmul_epilogue.wgsl"

const TK: u32 = 16u;
const STRIDE: u32 = 65u;
const NONE: u32 = 0xffffffffu;
#if GEGLU
const OUT_N: u32 = 32u;
#else
const OUT_N: u32 = 64u;
#endif

// [TK][STRIDE] each: a_tile[k][row], b_tile[k][column].
var<workgroup> a_tile: array<f32, 1040>;
var<workgroup> b_tile: array<f32, 1040>;

// The W row behind tile column c of the tile whose first output column is n0, or NONE.
fn w_row(n0: u32, c: u32) -> u32 {
#if GEGLU
    let col = n0 + (c & 31u);
    if col >= p.n {
        return NONE;
    }
    return select(col, p.n + col, c >= 32u);
#else
    let col = n0 + c;
    return select(NONE, col, col < p.n);
#endif
}

// Stores the four accumulators of one thread row (tile columns col, +16, +32, +48).
fn store_row(row: u32, col: u32, acc: vec4<f32>) {
    if row >= p.rows {
        return;
    }
#if GEGLU
    if col < p.n {
        store(row, col, acc.x, acc.z);
    }
    if col + 16u < p.n {
        store(row, col + 16u, acc.y, acc.w);
    }
#else
    for (var j = 0u; j < 4u; j++) {
        if col + 16u * j < p.n {
            store(row, col + 16u * j, acc[j], 0.0);
        }
    }
#endif
}

@compute @workgroup_size(16, 16)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let tile = wid.x + wid.y * nwg.x;
    if tile >= p.tiles {
        return;
    }
    let m0 = (tile / p.tiles_n) * 64u;
    let n0 = (tile % p.tiles_n) * OUT_N;
    var c0 = vec4<f32>(0.0);
    var c1 = vec4<f32>(0.0);
    var c2 = vec4<f32>(0.0);
    var c3 = vec4<f32>(0.0);
    for (var k0 = 0u; k0 < p.k; k0 += TK) {
        // 64 x 16 elements of X and of W, four each per thread, consecutive k per 16 threads.
        for (var e = 0u; e < 4u; e++) {
            let idx = li + 256u * e;
            let r = idx / TK;
            let c = idx % TK;
            let kk = k0 + c;
            let row = m0 + r;
            var av = 0.0;
            if row < p.rows && kk < p.k {
                av = f32(x[row * p.k + kk]);
            }
            a_tile[c * STRIDE + r] = av;
            let wr = w_row(n0, r);
            var bv = 0.0;
            if wr != NONE && kk < p.k {
                bv = f32(w[wr * p.k + kk]);
            }
            b_tile[c * STRIDE + r] = bv;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < TK; kk++) {
            let ao = kk * STRIDE + lid.y;
            let bo = kk * STRIDE + lid.x;
            let a = vec4<f32>(a_tile[ao], a_tile[ao + 16u], a_tile[ao + 32u], a_tile[ao + 48u]);
            let b = vec4<f32>(b_tile[bo], b_tile[bo + 16u], b_tile[bo + 32u], b_tile[bo + 48u]);
            c0 = fma(vec4<f32>(a.x), b, c0);
            c1 = fma(vec4<f32>(a.y), b, c1);
            c2 = fma(vec4<f32>(a.z), b, c2);
            c3 = fma(vec4<f32>(a.w), b, c3);
        }
        workgroupBarrier();
    }
    let col = n0 + lid.x;
    store_row(m0 + lid.y, col, c0);
    store_row(m0 + lid.y + 16u, col, c1);
    store_row(m0 + lid.y + 32u, col, c2);
    store_row(m0 + lid.y + 48u, col, c3);
}
