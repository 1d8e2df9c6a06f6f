// Tensor-core varlen flash attention (cooperative matrices): f16 storage, f16 x f16 products
// accumulated in f32, softmax in f32. Same bindings, parameters, dispatch and semantics as
// attention.wgsl (common/attention_span.wgsl), with ELEM = f16. Tile configuration (defines,
// attention/coop.rs, tuned per device): BR query rows (32 or 64) and BC keys per block.
// Formula: o_i = sum_j softmax_j(q_i . k_j / sqrt(D)) v_j over the allowed keys j of the same
// sequence (all, or |i - j| <= window; and j < key_lens[s] when key-limited); a query with
// no allowed key writes zeros.
// Fragments: common/coop.wgsl, FM x FN x FK. One workgroup of 128 invocations per
// (query tile, head, sequence), LANES = 128 / BR per query row. The output fragments of a
// product (BR / FM row slabs x BC / FN or D / FN columns, each FK deep per step) are looped
// over the subgroups the launch has (fragment = subgroup, + number of subgroups, ...), so any
// subgroup size from 8 to 64 works. K and V blocks are loaded with 8-byte vectors into registers one product
// ahead and stored to kv after it, so their latency hides behind the tensor-core work. Per
// block of BC keys:
//   (K in kv) fetch V; S = Q K^T (each fragment D / F deep) -> ct f32;
//   softmax (LANES invocations per row; V -> kv meanwhile): the row max over the block, each
//   lane over its BC / LANES columns then a subgroup shuffle reduction across the row's
//   lanes, scores scaled by log2(e) / sqrt(D) in f32, and each lane's BC / LANES columns of
//   P = exp2(s - m) rounded to f16 -> p; partial l from the rounded P, so weights and
//   normaliser agree; fetch the next K; O_blk = P V -> ct;
//   every invocation then keeps o = o * corr + O_blk for its D / LANES columns of the row
//   (f32 registers) and stores the next K to kv. Four barriers per block.
// The output accumulator lives in registers, not fragments: fragments are opaque, so a
// rescale would cost a store and a load per block; a fresh O_blk costs only the store.
// Only the key blocks that intersect [q0 - window, q_last + window] are visited.
// Q fragments are A (row-major), K rows are B = K^T read column-major, P is A, V rows are B
// read row-major. Strides are multiples of 16 bytes (PAD) as cooperative loads require.
// Workgroup memory (f16 sh = Q [BR][LD], kv [BC][LD], p [BR][LP]; f32 ct [BR][SS]): 45056
// bytes for D = 64, BR = BC = 64, PAD = 8 (attention/coop.rs).

enable f16;
#if EMULATE
#else
enable wgpu_cooperative_matrix;
#endif
#include "common/coop.wgsl"

const D: u32 = {{HEAD_DIM}}u;
const D4: u32 = D / 4u;
const BR: u32 = {{BR}}u;
const BC: u32 = {{BC}}u;
// Invocations per query row, and the output columns (and P columns) each one owns.
const LANES: u32 = 128u / BR;
const DL: u32 = D / LANES;
const PL: u32 = BC / LANES;
const PAD: u32 = {{PAD}}u;
const LD: u32 = D + PAD;
const LP: u32 = BC + PAD;
// ct holds S [BR][BC] and then O_blk [BR][D].
const SS: u32 = max(BC, D) + PAD / 2u;
const KV_AT: u32 = BR * LD;
const P_AT: u32 = KV_AT + BC * LD;
const NEG_INIT: f32 = -1.0e30;
const NEG_MASK: f32 = -2.0e30;

#include "common/attention_span.wgsl"

var<workgroup> sh: array<f16, P_AT + BR * LP>;
var<workgroup> ct: array<f32, BR * SS>;

// Copies n_rows rows of D halves, qkv vec4 column `col` of rows start + r0.., to sh[at..]
// (row stride LD); rows at or past `limit` (sequence-relative) are staged as 0.
fn stage(at: u32, n_rows: u32, r0: u32, limit: u32, start: u32, col: u32, li: u32) {
    for (var i = li; i < n_rows * D4; i += 128u) {
        let r = i / D4;
        let c4 = i % D4;
        var v = vec4<f16>(0.0);
        if r0 + r < limit {
            v = qkv[(start + r0 + r) * p.qkv_stride + col + c4];
        }
        let o = at + r * LD + 4u * c4;
        sh[o] = v.x;
        sh[o + 1u] = v.y;
        sh[o + 2u] = v.z;
        sh[o + 3u] = v.w;
    }
}

// Vectors of one K or V block per invocation (rounded up: those past the block skip).
const NV: u32 = (BC * D4 + 127u) / 128u;
var<private> rkv: array<vec4<f16>, NV>;

// Loads the BC block rows r0.. (qkv vec4 column `col` of rows start + r0..) into registers;
// rows at or past `limit` (sequence-relative) are 0.
fn fetch(r0: u32, limit: u32, start: u32, col: u32, li: u32) {
    for (var i = 0u; i < NV; i++) {
        let e = li + i * 128u;
        var v = vec4<f16>(0.0);
        if e < BC * D4 && r0 + e / D4 < limit {
            v = qkv[(start + r0 + e / D4) * p.qkv_stride + col + e % D4];
        }
        rkv[i] = v;
    }
}

// Stores the fetched block to kv ([BC][LD]). No early exit from the loop: its trip count
// stays constant, so the compiler unrolls it and rkv lives in registers, not scratch.
fn put(li: u32) {
    for (var i = 0u; i < NV; i++) {
        let e = li + i * 128u;
        if e < BC * D4 {
            let o = KV_AT + (e / D4) * LD + 4u * (e % D4);
            let v = rkv[i];
            sh[o] = v.x;
            sh[o + 1u] = v.y;
            sh[o + 2u] = v.z;
            sh[o + 3u] = v.w;
        }
    }
}

// Scaled score of query qi with block column c (key kt + c), or NEG_MASK where not allowed.
fn score(row: u32, qi: u32, kt: u32, c: u32, k_end: u32) -> f32 {
    let key = kt + c;
    let dist = select(qi - key, key - qi, key > qi);
    let allowed = key < k_end && (p.windowed == 0u || dist <= p.window);
    return select(NEG_MASK, ct[row * SS + c] * p.scale, allowed);
}

@compute @workgroup_size(128)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
#if EMULATE
#else
    @builtin(subgroup_id) sg_id: u32,
    @builtin(num_subgroups) n_sg: u32,
#endif
) {
#if EMULATE
    let sg = li / {{SG}}u;
    let nsg = 128u / {{SG}}u;
    lane = li % {{SG}}u;
#else
    let sg = sg_id;
    let nsg = n_sg;
#endif
    let sp = span(wg, nwg, BR);
    if !sp.live {
        return;
    }
    let h4 = p.qkv_stride / 3u;
    let col = sp.head * D4;
    stage(0u, BR, sp.q0, sp.len, sp.start, col, li);

    // This invocation's part of a row of the softmax and of the output.
    let row = li / LANES;
    let part = li % LANES;
    let qi = sp.q0 + row;
    var o: array<f32, DL>;
    var m = NEG_INIT;
    var l = 0.0;
    fetch(sp.k_begin, sp.k_end, sp.start, col + h4, li);
    put(li);
    for (var kt = sp.k_begin; kt < sp.k_end; kt += BC) {
        let more = kt + BC < sp.k_end;
        // K is staged (and Q, at first), the previous block's O_blk read by everyone.
        workgroupBarrier();
        fetch(kt, sp.k_end, sp.start, col + 2u * h4, li);
        for (var f = sg; f < (BR / FM) * (BC / FN); f += nsg) {
            let slab = f / (BC / FN);
            let n = f % (BC / FN);
            var acc = frag_zero();
            for (var kd = 0u; kd < D / FK; kd++) {
                let a = load_a(FM * slab * LD + FK * kd, LD);
                let b = load_b_col(KV_AT + FN * n * LD + FK * kd, LD);
                acc = mma(a, b, acc);
            }
            store_c(acc, FM * slab * SS + FN * n, SS);
        }
        // S is complete and K no longer read: V replaces K while the softmax runs.
        workgroupBarrier();
        put(li);
        // The row max over the block: each lane its BC / LANES columns, then across the
        // row's LANES consecutive lanes (within one subgroup: subgroups have 8 lanes or more).
        var bmax = NEG_INIT;
        for (var c = part * PL; c < (part + 1u) * PL; c++) {
            bmax = max(bmax, score(row, qi, kt, c, sp.k_end));
        }
        for (var x = 1u; x < LANES; x <<= 1u) {
            bmax = max(bmax, subgroupShuffleXor(bmax, x));
        }
        let m_new = max(m, bmax);
        let corr = exp2(m - m_new);
        m = m_new;
        var ls = 0.0;
        for (var c = part * PL; c < (part + 1u) * PL; c++) {
            let pj = f16(exp2(score(row, qi, kt, c, sp.k_end) - m_new));
            sh[P_AT + row * LP + c] = pj;
            ls += f32(pj);
        }
        l = l * corr + ls;
        // P and V are staged, S no longer read: O_blk may overwrite it.
        workgroupBarrier();
        if more {
            fetch(kt + BC, sp.k_end, sp.start, col + h4, li);
        }
        for (var f = sg; f < (BR / FM) * (D / FN); f += nsg) {
            let slab = f / (D / FN);
            let n = f % (D / FN);
            var acc = frag_zero();
            for (var kk = 0u; kk < BC / FK; kk++) {
                let a = load_a(P_AT + FM * slab * LP + FK * kk, LP);
                let b = load_b_row(KV_AT + FK * kk * LD + FN * n, LD);
                acc = mma(a, b, acc);
            }
            store_c(acc, FM * slab * SS + FN * n, SS);
        }
        // O_blk is complete and V no longer read: the next K may replace it.
        workgroupBarrier();
        for (var c = 0u; c < DL; c++) {
            o[c] = fma(o[c], corr, ct[row * SS + part * DL + c]);
        }
        if more {
            put(li);
        }
    }

    // The LANES parts of a row hold partial sums of the same normaliser.
    workgroupBarrier();
    ct[li] = l;
    workgroupBarrier();
    var total = 0.0;
    for (var j = 0u; j < LANES; j++) {
        total += ct[LANES * row + j];
    }
    if qi < sp.len {
        let inv = select(0.0, 1.0 / total, total > 0.0);
        let o_at = (sp.start + qi) * p.out_stride + col + part * (DL / 4u);
        for (var c4 = 0u; c4 < DL / 4u; c4++) {
            let v = vec4<f32>(o[4u * c4], o[4u * c4 + 1u], o[4u * c4 + 2u], o[4u * c4 + 3u]);
            out[o_at + c4] = vec4<f16>(v * inv);
        }
    }
}
