// Tiled matmul: Y[T, N] = epilogue(X[T, K] . W[N, K]^T), W in PyTorch [out, in] layout,
// f32 or f16 storage (ELEM), f32 accumulation. Any T, K, N.
// Bindings: see common/matmul_epilogue.wgsl (0 params, 1 x, 2 w, 3 y, then bias/residual).
// Tile configuration (matmul/tiled.rs): 16 x 16 threads, thread (tx, ty) owning RM rows
// ty + 16i and RN tile columns tx + 16j; a workgroup computes TM = 16 RM rows x TN = 16 RN
// tile columns (TN / 2 outputs for GeGLU: the tile's TN W rows are the TN / 2 input rows
// n0.. and the TN / 2 gate rows I + n0.., so value column j < RN / 2 pairs with gate column
// j + RN / 2 in the same thread).
// Dispatch: p.tiles = ceil(T / TM) * p.tiles_n workgroups spread over x/y (runtime::grid);
// tile = m_tile * tiles_n + n_tile, so neighbouring workgroups share their X rows.
// Shared-memory reads are broadcasts or consecutive, and stores coalesce. K advances 16 at a
// time; both blocks are stored k-major with rows padded by one so the transposing stores do
// not conflict. Rows, columns and k past the edges load as 0 and are never stored.
// DIRECT (CPU adapters, with VEC: K a multiple of 4): no shared memory and no barriers; each
// thread reads its RM rows of X and RN rows of W straight from the buffers, four consecutive
// k per load (vec4<ELEM>), and accumulates RM x RN dot products. A software rasterizer
// (llvmpipe) pays per load instruction and per lane, not per byte, and its caches hold the
// blocks that a GPU would stage: this build issues a quarter of the staged build's loads (and
// two per k block fewer than it would through workgroup memory) and no barrier. Unpacking
// 16-byte loads of eight f16 (VEC8) costs it more than it saves. Rows past T read the last row and
// columns past N read W's first row; neither is stored.

#if F16
enable f16;
#endif
#include "common/matmul_epilogue.wgsl"
#include "common/matmul_wrow.wgsl"

const TK: u32 = 16u;
const RM: u32 = {{RM}}u;
const RN: u32 = {{RN}}u;
const TM: u32 = 16u * RM;
const TN: u32 = 16u * RN;
const SA: u32 = TM + 1u;
const SB: u32 = TN + 1u;
#if GEGLU
const OUT_N: u32 = TN / 2u;
#else
const OUT_N: u32 = TN;
#endif

#if DIRECT
// (no workgroup memory)
#else
// a_tile[k][row] ([TK][SA]) and b_tile[k][tile column] ([TK][SB]).
var<workgroup> a_tile: array<f32, TK * SA>;
var<workgroup> b_tile: array<f32, TK * SB>;
#endif

// Stores the RN accumulators of one thread row (output columns col + 16 j).
fn store_row(row: u32, col: u32, acc: array<f32, RN>) {
    if row >= p.rows {
        return;
    }
#if GEGLU
    for (var j = 0u; j < RN / 2u; j++) {
        if col + 16u * j < p.n {
            store(row, col + 16u * j, acc[j], acc[j + RN / 2u]);
        }
    }
#else
    for (var j = 0u; j < RN; j++) {
        if col + 16u * j < p.n {
#if ROPE
            // The partner column d/2 away is this thread's j +- d/32 (tiles hold whole heads),
            // picked with constant indices: an index known only at run time would keep acc
            // in scratch memory.
            let ahead = (col + 16u * j) % ROPE_D < ROPE_D / 2u;
            let pj = select(j - ROPE_D / 32u, j + ROPE_D / 32u, ahead);
            var own = acc[0];
            var partner = 0.0;
            for (var q = 0u; q < RN; q++) {
                if q == j {
                    own = acc[q];
                }
                if q == pj {
                    partner = acc[q];
                }
            }
            store(row, col + 16u * j, own, partner);
#else
            store(row, col + 16u * j, acc[j], 0.0);
#endif
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
    let m0 = (tile / p.tiles_n) * TM;
    let n0 = (tile % p.tiles_n) * OUT_N;
    var acc: array<array<f32, RN>, RM>;
#if DIRECT
    let kv = p.k / 4u;
    var xo: array<u32, RM>;
    var wo: array<u32, RN>;
    for (var i = 0u; i < RM; i++) {
        xo[i] = min(m0 + lid.y + 16u * i, p.rows - 1u) * kv;
    }
    for (var j = 0u; j < RN; j++) {
        let wr = w_row(n0, lid.x + 16u * j);
        wo[j] = select(wr, 0u, wr == NONE) * kv;
    }
    for (var kq = 0u; kq < kv; kq++) {
        var a: array<vec4<f32>, RM>;
        var b: array<vec4<f32>, RN>;
        for (var i = 0u; i < RM; i++) {
            a[i] = vec4<f32>(x[xo[i] + kq]);
        }
        for (var j = 0u; j < RN; j++) {
            b[j] = vec4<f32>(w[wo[j] + kq]);
        }
        for (var i = 0u; i < RM; i++) {
            for (var j = 0u; j < RN; j++) {
                acc[i][j] += dot(a[i], b[j]);
            }
        }
    }
#else
    for (var k0 = 0u; k0 < p.k; k0 += TK) {
        // TM x TK elements of X and TN x TK of W, consecutive k per 16 threads.
        for (var idx = li; idx < TM * TK; idx += 256u) {
            let r = idx / TK;
            let c = idx % TK;
            let kk = k0 + c;
            let row = m0 + r;
            var av = 0.0;
            if row < p.rows && kk < p.k {
                av = f32(x[row * p.k + kk]);
            }
            a_tile[c * SA + r] = av;
        }
        for (var idx = li; idx < TN * TK; idx += 256u) {
            let r = idx / TK;
            let c = idx % TK;
            let kk = k0 + c;
            let wr = w_row(n0, r);
            var bv = 0.0;
            if wr != NONE && kk < p.k {
                bv = f32(w[wr * p.k + kk]);
            }
            b_tile[c * SB + r] = bv;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < TK; kk++) {
            var a: array<f32, RM>;
            var b: array<f32, RN>;
            for (var i = 0u; i < RM; i++) {
                a[i] = a_tile[kk * SA + lid.y + 16u * i];
            }
            for (var j = 0u; j < RN; j++) {
                b[j] = b_tile[kk * SB + lid.x + 16u * j];
            }
            for (var i = 0u; i < RM; i++) {
                for (var j = 0u; j < RN; j++) {
                    acc[i][j] = fma(a[i], b[j], acc[i][j]);
                }
            }
        }
        workgroupBarrier();
    }
#endif
    for (var i = 0u; i < RM; i++) {
        // acc by constant indices only (see store_row): a compiler that does not unroll this
        // loop (a long epilogue) would otherwise index it at run time, in scratch memory.
        var r = acc[0];
        for (var q = 1u; q < RM; q++) {
            if q == i {
                r = acc[q];
            }
        }
        store_row(m0 + lid.y + 16u * i, n0 + lid.x, r);
    }
}
