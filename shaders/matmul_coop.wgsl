// Tensor-core matmul (cooperative matrices): Y[T, N] = epilogue(X[T, K] . W[N, K]^T), W in
// PyTorch [out, in] layout, f16 storage, f16 x f16 products accumulated in f32. Any T, K, N.
// Bindings: see common/matmul_epilogue.wgsl (0 params, 1 x, 2 w, 3 y, then bias/residual).
// Fragments: common/coop.wgsl, FM x FN x FK. One workgroup computes an output tile of
// TM = WTM FM WARPS_M rows x TN = WTN FN WARPS_N columns (TN / 2 for GeGLU: its TN W rows are
// the TN / 2 input rows n0.. and the TN / 2 gate rows I + n0..), as a WARPS_M x WARPS_N grid
// of warp tiles of WTM x WTN fragments (WTM WTN coopMultiplyAdd per FK of k): warp tile t at
// tile rows WTM FM (t / WARPS_N), columns WTN FN (t % WARPS_N). The grid and the warp tile
// are the tile configuration (matmul/coop.rs `Config`, tuned per device).
// The workgroup has WG = WARPS SG invocations, SG being the subgroup size the driver runs
// cooperative matrices at: subgroup t < WARPS owns warp tile t; where the driver runs
// narrower subgroups, the others only stage and store. The subgroup index only moves
// pointers or skips whole fragment blocks, so control flow stays uniform within each
// subgroup.
// Dispatch: p.tiles = ceil(T / TM) * p.tiles_n workgroups spread over x/y (runtime::grid);
// tile = m_tile * tiles_n + n_tile, so neighbours share their X rows.
// K advances KS = 32 at a time through two buffers: every invocation stages the next block
// into one while the subgroups multiply the other (one barrier per block). With VEC (K a
// multiple of 4, so every row starts 8-byte aligned) the loads are vectors, 16 bytes of
// eight k with VEC8 (K a multiple of 8) else 8 bytes of four; without it (ragged K) they
// are scalar. The next block is stored to workgroup memory before the multiply, not held
// in registers across it: that took 16 registers more per invocation (96 instead of 80 on
// NVIDIA, 20 warps per SM instead of 24), and other warps hide the loads' latency. X
// rows are staged [row][k] (A, row-major); W rows [n][k], which is B = W^T column-major. Row
// stride 40 halves = 80 bytes: 16-byte aligned as cooperative loads require, and off the
// 128-byte period so fragment rows spread over banks.
// Epilogue: fragments are opaque, so the warp tiles' fragment rows are stored one at a time
// (WTM passes) to a WARPS_M FM x TN f32 staging tile, then all invocations apply the
// element-wise part (`store` of common/matmul_epilogue.wgsl) with coalesced, guarded writes.
// Edges: rows, columns and k past the ends are staged as 0 and never stored.
// Workgroup memory: 2 (TM + TN) 40 x 2 B + WARPS_M FM x TN x 4 B (matmul/coop.rs
// `Config::workgroup_bytes`).

enable f16;
#if EMULATE
#else
enable wgpu_cooperative_matrix;
#endif
#include "common/matmul_epilogue.wgsl"
#include "common/matmul_wrow.wgsl"
#include "common/coop.wgsl"

const WG: u32 = {{WG}}u;
const WARPS_M: u32 = {{WARPS_M}}u;
const WARPS_N: u32 = {{WARPS_N}}u;
const WARPS: u32 = WARPS_M * WARPS_N;
// Fragments of a warp tile: WTM rows of WTN.
const WTM: u32 = {{WTM}}u;
const WTN: u32 = {{WTN}}u;
const KS: u32 = 32u;
const LDS: u32 = 40u;
const TM: u32 = WTM * FM * WARPS_M;
const TN: u32 = WTN * FN * WARPS_N;
// Halves of one buffer of the X block ([TM][LDS]) and of the W block ([TN][LDS]).
const A_HALVES: u32 = TM * LDS;
const B_HALVES: u32 = TN * LDS;
const B_AT: u32 = 2u * A_HALVES;
// Rows and row stride of the staging tile ct ([SR][CS]): one fragment row of every warp tile.
const SR: u32 = WARPS_M * FM;
const CS: u32 = TN;
#if GEGLU
const OUT_N: u32 = TN / 2u;
#else
const OUT_N: u32 = TN;
#endif

var<workgroup> sh: array<f16, 2u * (A_HALVES + B_HALVES)>;
var<workgroup> ct: array<f32, SR * CS>;

#if VEC
// Vector loads of VW halves: 16 bytes (vec4<u32>, eight k) with VEC8 (K a multiple of 8),
// else 8 bytes (vec4<f16>, four k).
#if VEC8
const VW: u32 = 8u;
alias Vec = vec4<u32>;

// Eight halves from their bits (each u32 holds two, the lower k first). f16 -> f32 -> f16 is
// exact (a device may flush f16 subnormals, below 6.1e-5, to zero: within the f32
// accumulation's error). naga does not translate bitcast<vec2<f16>>(u32).
fn put_vec(at: u32, v: vec4<u32>) {
    for (var j = 0u; j < 4u; j++) {
        let h = vec2<f16>(unpack2x16float(v[j]));
        sh[at + 2u * j] = h.x;
        sh[at + 2u * j + 1u] = h.y;
    }
}
#else
const VW: u32 = 4u;
alias Vec = vec4<f16>;

fn put_vec(at: u32, v: vec4<f16>) {
    sh[at] = v.x;
    sh[at + 1u] = v.y;
    sh[at + 2u] = v.z;
    sh[at + 3u] = v.w;
}
#endif
// Vectors per row of a block, and per invocation and block: the TM X rows and TN W rows of
// KS k (rounded up: invocations past the last vector skip it).
const QK: u32 = KS / VW;
const VA: u32 = (TM * QK + WG - 1u) / WG;
const VB: u32 = (TN * QK + WG - 1u) / WG;
var<private> ra: array<Vec, VA>;
var<private> rb: array<Vec, VB>;

// Loads the K block k0.. into registers: vector i of invocation li is row (li + i WG) / QK,
// k group (li + i WG) % QK (consecutive invocations read consecutive groups of a row), 0 past
// the edges (p.k is a multiple of VW, so a group is all in or all out). Each vector's row
// test becomes its k limit (p.k, or 0 past the edges): an integer the compiler keeps across
// the K loop, where the tests themselves would be kept as predicates (spilled on NVIDIA).
fn fetch(k0: u32, m0: u32, n0: u32, li: u32) {
    for (var i = 0u; i < VA; i++) {
        let e = li + i * WG;
        let row = m0 + e / QK;
        let kk = k0 + (e % QK) * VW;
        let limit = select(0u, p.k, e < TM * QK && row < p.rows);
        var v = Vec();
        if kk < limit {
            v = x[(row * p.k + kk) / VW];
        }
        ra[i] = v;
    }
    for (var i = 0u; i < VB; i++) {
        let e = li + i * WG;
        let wr = w_row(n0, e / QK);
        let kk = k0 + (e % QK) * VW;
        let limit = select(0u, p.k, e < TN * QK && wr != NONE);
        var v = Vec();
        if kk < limit {
            v = w[(wr * p.k + kk) / VW];
        }
        rb[i] = v;
    }
}

// Stores the fetched block into buffer `buf`, laid out as `load_block` stages it. No early
// exit from the loops: their trip counts stay constant, so the compiler unrolls them and
// ra and rb live in registers (a loop it cannot unroll indexes them in scratch memory).
fn put(buf: u32, li: u32) {
    for (var i = 0u; i < VA; i++) {
        let e = li + i * WG;
        if e < TM * QK {
            put_vec(buf * A_HALVES + (e / QK) * LDS + (e % QK) * VW, ra[i]);
        }
    }
    for (var i = 0u; i < VB; i++) {
        let e = li + i * WG;
        if e < TN * QK {
            put_vec(B_AT + buf * B_HALVES + (e / QK) * LDS + (e % QK) * VW, rb[i]);
        }
    }
}
#else
// Stages the K block k0.. into buffer `buf`: the tile's TM X rows and TN W rows, each row's
// KS k read by KS consecutive invocations (coalesced), 0 past the edges.
fn load_block(buf: u32, k0: u32, m0: u32, n0: u32, li: u32) {
    for (var e = li; e < TM * KS; e += WG) {
        let r = e / KS;
        let kk = k0 + e % KS;
        let row = m0 + r;
        var v = f16(0.0);
        if row < p.rows && kk < p.k {
            v = f16(x[row * p.k + kk]);
        }
        sh[buf * A_HALVES + r * LDS + e % KS] = v;
    }
    for (var e = li; e < TN * KS; e += WG) {
        let r = e / KS;
        let kk = k0 + e % KS;
        let wr = w_row(n0, r);
        var v = f16(0.0);
        if wr != NONE && kk < p.k {
            v = f16(w[wr * p.k + kk]);
        }
        sh[B_AT + buf * B_HALVES + r * LDS + e % KS] = v;
    }
}
#endif

// Writes pass h from ct: staging row sr is tile row WTM FM (sr / FM) + FM h + sr % FM.
fn write_pass(m0: u32, n0: u32, h: u32, li: u32) {
    for (var e = li; e < SR * OUT_N; e += WG) {
        let sr = e / OUT_N;
        let c = e % OUT_N;
        let row = m0 + (sr / FM) * WTM * FM + h * FM + sr % FM;
        let col = n0 + c;
        if row < p.rows && col < p.n {
#if GEGLU
            store(row, col, ct[sr * CS + c], ct[sr * CS + c + OUT_N]);
#else
#if ROPE
            // The partner column d/2 away is in the same staged row (tiles hold whole heads).
            store(row, col, ct[sr * CS + c], ct[sr * CS + rope_partner(c)]);
#else
            store(row, col, ct[sr * CS + c], 0.0);
#endif
#endif
        }
    }
}

@compute @workgroup_size(WG)
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
    let sg = li / {{SG}}u;
    lane = li % {{SG}}u;
#else
    let sg = sg_id;
#endif
    let tile = wid.x + wid.y * nwg.x;
    if tile >= p.tiles {
        return;
    }
    let m0 = (tile / p.tiles_n) * TM;
    let n0 = (tile % p.tiles_n) * OUT_N;
    let owner = sg < WARPS;
    let wm = sg / WARPS_N;
    let wn = sg % WARPS_N;
    // acc[i WTN + j]: warp tile rows FM i, columns FN j.
    var acc: array<FragC, WTM * WTN>;
    for (var i = 0u; i < WTM * WTN; i++) {
        acc[i] = frag_zero();
    }
    let nk = (p.k + KS - 1u) / KS;
#if VEC
    fetch(0u, m0, n0, li);
    put(0u, li);
#else
    load_block(0u, 0u, m0, n0, li);
#endif
    workgroupBarrier();
    for (var kt = 0u; kt < nk; kt++) {
        let buf = kt & 1u;
        let more = kt + 1u < nk;
#if VEC
        if more {
            fetch((kt + 1u) * KS, m0, n0, li);
            put(buf ^ 1u, li);
        }
#else
        if more {
            load_block(buf ^ 1u, (kt + 1u) * KS, m0, n0, li);
        }
#endif
        if owner {
            for (var kk = 0u; kk < KS; kk += FK) {
                let ao = buf * A_HALVES + wm * WTM * FM * LDS + kk;
                let bo = B_AT + buf * B_HALVES + wn * WTN * FN * LDS + kk;
                var b: array<FragB, WTN>;
                for (var j = 0u; j < WTN; j++) {
                    b[j] = load_b_col(bo + j * FN * LDS, LDS);
                }
                for (var i = 0u; i < WTM; i++) {
                    let a = load_a(ao + i * FM * LDS, LDS);
                    for (var j = 0u; j < WTN; j++) {
                        acc[i * WTN + j] = mma(a, b[j], acc[i * WTN + j]);
                    }
                }
            }
        }
        // Reads of `buf` are done before the next block overwrites it, and its loads of
        // buf ^ 1 are visible.
        workgroupBarrier();
    }
    // Pass h: warp tile t stores its fragment row h at ct rows FM (t / WARPS_N), columns
    // WTN FN (t % WARPS_N).
    let staged = wm * FM * CS + wn * WTN * FN;
    for (var h = 0u; h < WTM; h++) {
        if owner {
            for (var j = 0u; j < WTN; j++) {
                // acc is indexed by constants only (the loops over it unrolled), never by
                // h: a compiler that cannot unroll this loop (barriers, the write loop)
                // would keep an array indexed at run time in scratch memory.
                var f = acc[0];
                for (var t = 1u; t < WTM * WTN; t++) {
                    if t == h * WTN + j {
                        f = acc[t];
                    }
                }
                let at = staged + j * FN;
                store_c(f, at, CS);
            }
        }
        workgroupBarrier();
        write_pass(m0, n0, h, li);
        // ct is read before the next pass overwrites it.
        workgroupBarrier();
    }
}
