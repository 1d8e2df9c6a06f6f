// Tensor-core matmul (cooperative matrices): Y[T, N] = epilogue(X[T, K] . W[N, K]^T), W in
// PyTorch [out, in] layout, f16 storage, f16 x f16 products accumulated in f32. Any T, K, N.
// Bindings: see common/matmul_epilogue.wgsl (0 params, 1 x, 2 w, 3 y, then bias/residual).
// Dispatch: one workgroup of 128 invocations = 4 subgroups of 32 per output tile of 128 rows x
// 64 columns (128 x 32 for GeGLU: the tile's 64 W rows are the 32 input rows n0.. and the 32
// gate rows I+n0..), p.tiles = ceil(T/128) * p.tiles_n workgroups spread over x/y
// (runtime::grid); tile = m_tile * tiles_n + n_tile, so neighbours share their X rows.
// Subgroup s owns the 64 x 32 warp tile at tile rows 64 (s / 2), columns 32 (s % 2): 4 x 2
// fragments of 16x16 f32 accumulators, 8 coopMultiplyAdd per 16 k. The subgroup index only
// moves pointers, never control flow (cooperative ops need uniform control flow).
// K advances 32 at a time through two workgroup buffers: while the subgroups multiply one
// block, every invocation loads the next into the other (one barrier per block). X rows are
// staged [row][k] (A, loaded row-major: coopLoadT); W rows [n][k], which is B = W^T in
// column-major order (coopLoad). Row stride 40 halves = 80 bytes: 16-byte aligned as
// cooperative loads require, and off the 128-byte period so fragment rows spread over banks.
// Epilogue: fragments are opaque, so each half of the warp tiles (2 x 2 fragments per
// subgroup) is stored to a 64 x 64 f32 staging tile, then all invocations apply the element-
// wise part (`store` of common/matmul_epilogue.wgsl) with coalesced, guarded writes.
// Edges: rows, columns and k past the ends are staged as 0 and never stored.
// Workgroup memory: 2 x (128 + 64) x 40 x 2 B + 64 x 64 x 4 B = 30720 + 16384 = 47104 bytes.
// naga 30: every cooperative load/store takes its pointer index and stride from arguments
// (values already computed), never inline expressions or uniform fields (GPU.md).
// EMULATE (tests only): subgroups are li / 32 and the four cooperative operations become plain
// loops over fragments spread over the 32 lanes, so the tiling, staging and epilogue logic runs
// on adapters without cooperative matrices (lavapipe).

enable f16;
#if EMULATE
#else
enable wgpu_cooperative_matrix;
#endif
#include "common/matmul_epilogue.wgsl"

const KS: u32 = 32u;
const LDS: u32 = 40u;
// Halves of one buffer of a_tile ([128][LDS]) and of b_tile ([64][LDS]).
const A_HALVES: u32 = 5120u;
const B_HALVES: u32 = 2560u;
// Row stride of c_tile ([64][CS]).
const CS: u32 = 64u;
const NONE: u32 = 0xffffffffu;
#if GEGLU
const OUT_N: u32 = 32u;
#else
const OUT_N: u32 = 64u;
#endif

var<workgroup> a_tile: array<f16, 10240>;
var<workgroup> b_tile: array<f16, 5120>;
var<workgroup> c_tile: array<f32, 4096>;

#if EMULATE
// A and B fragments are their place in workgroup memory (read when multiplied: the block is
// not rewritten in between); a C fragment holds this lane's 8 of the 256 elements, element e
// of lane l being (r, c) = ((8 l + e) / 16, (8 l + e) % 16), as a real one is spread.
struct FragA {
    o: u32,
    s: u32,
}
alias FragB = FragA;
alias FragC = array<f32, 8>;
var<private> lane: u32;

fn frag_zero() -> FragC {
    return FragC();
}

// Element (r, k) at a_tile[o + r * s + k] (row-major).
fn load_a(o: u32, s: u32) -> FragA {
    return FragA(o, s);
}

// Element (k, n) at b_tile[o + n * s + k] (column-major).
fn load_b(o: u32, s: u32) -> FragB {
    return FragB(o, s);
}

fn mma(a: FragA, b: FragB, c: FragC) -> FragC {
    var d = c;
    for (var e = 0u; e < 8u; e++) {
        let r = (lane * 8u + e) / 16u;
        let n = (lane * 8u + e) % 16u;
        var acc = d[e];
        for (var k = 0u; k < 16u; k++) {
            acc = fma(f32(a_tile[a.o + r * a.s + k]), f32(b_tile[b.o + n * b.s + k]), acc);
        }
        d[e] = acc;
    }
    return d;
}

// Element (r, c) to c_tile[o + r * s + c] (row-major).
fn store_c(m: FragC, o: u32, s: u32) {
    var fm = m;
    for (var e = 0u; e < 8u; e++) {
        let r = (lane * 8u + e) / 16u;
        let c = (lane * 8u + e) % 16u;
        c_tile[o + r * s + c] = fm[e];
    }
}
#else
alias FragA = coop_mat16x16<f16, A>;
alias FragB = coop_mat16x16<f16, B>;
alias FragC = coop_mat16x16<f32, C>;

fn frag_zero() -> FragC {
    return FragC();
}

fn load_a(o: u32, s: u32) -> FragA {
    return coopLoadT<FragA>(&a_tile[o], s);
}

fn load_b(o: u32, s: u32) -> FragB {
    return coopLoad<FragB>(&b_tile[o], s);
}

fn mma(a: FragA, b: FragB, c: FragC) -> FragC {
    return coopMultiplyAdd(a, b, c);
}

fn store_c(m: FragC, o: u32, s: u32) {
    coopStoreT(m, &c_tile[o], s);
}
#endif

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

// Stages the K block k0.. into buffer `buf`: the tile's 128 X rows and 64 W rows, each row's
// 32 k read by 32 consecutive invocations (coalesced), 0 past the edges.
fn load_block(buf: u32, k0: u32, m0: u32, n0: u32, li: u32) {
    let c = li % KS;
    let kk = k0 + c;
    let in_k = kk < p.k;
    for (var q = 0u; q < 32u; q++) {
        let r = q * 4u + li / KS;
        let row = m0 + r;
        var v = f16(0.0);
        if row < p.rows && in_k {
            v = f16(x[row * p.k + kk]);
        }
        a_tile[buf * A_HALVES + r * LDS + c] = v;
    }
    for (var q = 0u; q < 16u; q++) {
        let r = q * 4u + li / KS;
        let wr = w_row(n0, r);
        var v = f16(0.0);
        if wr != NONE && in_k {
            v = f16(w[wr * p.k + kk]);
        }
        b_tile[buf * B_HALVES + r * LDS + c] = v;
    }
}

// Stores one subgroup's 2 x 2 fragments (32 x 32) at c_tile row 32 wm, column 32 wn.
fn stage(f00: FragC, f01: FragC, f10: FragC, f11: FragC, wm: u32, wn: u32) {
    let o = wm * 32u * CS + wn * 32u;
    store_c(f00, o, CS);
    store_c(f01, o + 16u, CS);
    store_c(f10, o + 16u * CS, CS);
    store_c(f11, o + 16u * CS + 16u, CS);
}

// Writes half h of the tile from c_tile: staging row sr is tile row 64 (sr / 32) + 32 h + sr % 32.
fn write_half(m0: u32, n0: u32, h: u32, li: u32) {
#if GEGLU
    // 64 rows x 32 outputs, each pairing tile column c with its gate column c + 32.
    for (var q = 0u; q < 16u; q++) {
        let e = li + 128u * q;
        let sr = e / 32u;
        let c = e % 32u;
        let row = m0 + (sr / 32u) * 64u + h * 32u + sr % 32u;
        let col = n0 + c;
        if row < p.rows && col < p.n {
            store(row, col, c_tile[sr * CS + c], c_tile[sr * CS + c + 32u]);
        }
    }
#else
    for (var q = 0u; q < 32u; q++) {
        let e = li + 128u * q;
        let sr = e / 64u;
        let c = e % 64u;
        let row = m0 + (sr / 32u) * 64u + h * 32u + sr % 32u;
        let col = n0 + c;
        if row < p.rows && col < p.n {
            store(row, col, c_tile[sr * CS + c], 0.0);
        }
    }
#endif
}

@compute @workgroup_size(128)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
#if EMULATE
#else
    @builtin(subgroup_id) sg_id: u32,
#endif
) {
#if EMULATE
    let sg = li / 32u;
    lane = li % 32u;
#else
    let sg = sg_id;
#endif
    let tile = wid.x + wid.y * nwg.x;
    if tile >= p.tiles {
        return;
    }
    let m0 = (tile / p.tiles_n) * 128u;
    let n0 = (tile % p.tiles_n) * OUT_N;
    let wm = sg / 2u;
    let wn = sg % 2u;
    // c<i><j>: warp tile rows 16 i, columns 16 j.
    var c00 = frag_zero();
    var c01 = frag_zero();
    var c10 = frag_zero();
    var c11 = frag_zero();
    var c20 = frag_zero();
    var c21 = frag_zero();
    var c30 = frag_zero();
    var c31 = frag_zero();
    let nk = (p.k + KS - 1u) / KS;
    load_block(0u, 0u, m0, n0, li);
    workgroupBarrier();
    for (var kt = 0u; kt < nk; kt++) {
        let buf = kt & 1u;
        if kt + 1u < nk {
            load_block(buf ^ 1u, (kt + 1u) * KS, m0, n0, li);
        }
        for (var kk = 0u; kk < KS; kk += 16u) {
            let ao = buf * A_HALVES + wm * 64u * LDS + kk;
            let bo = buf * B_HALVES + wn * 32u * LDS + kk;
            let a0 = load_a(ao, LDS);
            let a1 = load_a(ao + 16u * LDS, LDS);
            let a2 = load_a(ao + 32u * LDS, LDS);
            let a3 = load_a(ao + 48u * LDS, LDS);
            let b0 = load_b(bo, LDS);
            let b1 = load_b(bo + 16u * LDS, LDS);
            c00 = mma(a0, b0, c00);
            c01 = mma(a0, b1, c01);
            c10 = mma(a1, b0, c10);
            c11 = mma(a1, b1, c11);
            c20 = mma(a2, b0, c20);
            c21 = mma(a2, b1, c21);
            c30 = mma(a3, b0, c30);
            c31 = mma(a3, b1, c31);
        }
        // Reads of `buf` are done before the next block overwrites it, and its loads of
        // buf ^ 1 are visible.
        workgroupBarrier();
    }
    stage(c00, c01, c10, c11, wm, wn);
    workgroupBarrier();
    write_half(m0, n0, 0u, li);
    workgroupBarrier();
    stage(c20, c21, c30, c31, wm, wn);
    workgroupBarrier();
    write_half(m0, n0, 1u, li);
}
