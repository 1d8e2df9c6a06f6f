// Tensor-core varlen flash attention (cooperative matrices): f16 storage, f16 x f16 products
// accumulated in f32, softmax in f32. Same bindings, parameters, dispatch and semantics as
// attention.wgsl: 0 params, 1 qkv [T, 3H] f16 (read), 2 cu_seqlens [B + 1] u32 (read),
// 3 out [T, H] f16 (write); x = query tiles of BR = 64 rows, y/z = (head, sequence) pairs.
// Formula: o_i = sum_j softmax_j(q_i . k_j / sqrt(D)) v_j over the allowed keys j of the same
// sequence (all, or |i - j| <= window); a query with no allowed key writes zeros.
// One workgroup = 4 subgroups of 32 per (query tile, head, sequence). Per block of BC keys:
//   K -> kv; S = Q K^T (subgroup s: rows 16 s, all BC keys, D / 16 fragments deep) -> s_tile f32;
//   softmax (2 invocations per row; V -> kv meanwhile): row max over the block, scores scaled
//   by log2(e) / sqrt(D) in f32, P = exp2(s - m) rounded to f16 -> p; partial l from the
//   rounded P, so weights and normaliser agree; O_blk = P V (subgroup s: rows 16 s) -> s_tile;
//   every invocation then keeps o = o * corr + O_blk for its half row (D / 2 f32 registers).
// The output accumulator lives in registers, not fragments: fragments are opaque, so a
// rescale would cost a store and a load per block; a fresh O_blk costs only the store.
// Only the key blocks that intersect [q0 - window, q_last + window] are visited.
// Q fragments are A (row-major), K rows are B = K^T read column-major (coopLoad), P is A, V
// rows are B read row-major (coopLoadT). Strides are multiples of 16 bytes (PAD) as
// cooperative loads require. Workgroup memory (f16 sh = Q [BR][LD], kv [BC][LD], p [BR][LP];
// f32 s_tile [BR][SS]): 45056 bytes for D = 64, BC = 64, PAD = 8 (attention_coop.rs).
// naga 30: every cooperative load/store takes its index and stride as function arguments.
// EMULATE (tests only): subgroups are li / 32, the cooperative operations plain loops.

enable f16;
#if EMULATE
#else
enable wgpu_cooperative_matrix;
#endif

const D: u32 = {{HEAD_DIM}}u;
const D4: u32 = D / 4u;
// Output columns per invocation (half a row).
const DH: u32 = D / 2u;
const BR: u32 = 64u;
const BC: u32 = {{BC}}u;
const PAD: u32 = {{PAD}}u;
const LD: u32 = D + PAD;
const LP: u32 = BC + PAD;
// s_tile holds S [BR][BC] and then O_blk [BR][D].
const SS: u32 = max(BC, D) + PAD / 2u;
const KV_AT: u32 = BR * LD;
const P_AT: u32 = KV_AT + BC * LD;
const NEG_INIT: f32 = -1.0e30;
const NEG_MASK: f32 = -2.0e30;

struct AttentionParams {
    n_heads: u32,
    segments: u32,
    // Row strides in vec4 units: qkv (3H / 4) and out (H / 4).
    qkv_stride: u32,
    out_stride: u32,
    windowed: u32,
    window: u32,
    // log2(e) / sqrt(D).
    scale: f32,
    rows: u32,
}

@group(0) @binding(0) var<uniform> p: AttentionParams;
@group(0) @binding(1) var<storage, read> qkv: array<vec4<f16>>;
@group(0) @binding(2) var<storage, read> cu_seqlens: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<vec4<f16>>;

var<workgroup> sh: array<f16, P_AT + BR * LP>;
var<workgroup> s_tile: array<f32, BR * SS>;

#if EMULATE
// A and B fragments are their place in sh (not rewritten while they are used); a C fragment
// holds this lane's 8 of the 256 elements: element e of lane l is (r, c) = ((8 l + e) / 16,
// (8 l + e) % 16). A (r, k) is at sh[o + r * s + k]; B (k, n) at sh[o + k * sk + n * sn].
struct FragA {
    o: u32,
    s: u32,
}
struct FragB {
    o: u32,
    sk: u32,
    sn: u32,
}
alias FragC = array<f32, 8>;
var<private> lane: u32;

fn frag_zero() -> FragC {
    return FragC();
}

fn load_a(o: u32, s: u32) -> FragA {
    return FragA(o, s);
}

fn load_b_col(o: u32, s: u32) -> FragB {
    return FragB(o, 1u, s);
}

fn load_b_row(o: u32, s: u32) -> FragB {
    return FragB(o, s, 1u);
}

fn mma(a: FragA, b: FragB, c: FragC) -> FragC {
    var d = c;
    for (var e = 0u; e < 8u; e++) {
        let r = (lane * 8u + e) / 16u;
        let n = (lane * 8u + e) % 16u;
        var acc = d[e];
        for (var k = 0u; k < 16u; k++) {
            acc = fma(f32(sh[a.o + r * a.s + k]), f32(sh[b.o + k * b.sk + n * b.sn]), acc);
        }
        d[e] = acc;
    }
    return d;
}

fn store_c(m: FragC, o: u32, s: u32) {
    var fm = m;
    for (var e = 0u; e < 8u; e++) {
        s_tile[o + ((lane * 8u + e) / 16u) * s + (lane * 8u + e) % 16u] = fm[e];
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
    return coopLoadT<FragA>(&sh[o], s);
}

// B (k, n) at sh[o + n * s + k]: rows of K seen as K^T.
fn load_b_col(o: u32, s: u32) -> FragB {
    return coopLoad<FragB>(&sh[o], s);
}

// B (k, n) at sh[o + k * s + n]: rows of V.
fn load_b_row(o: u32, s: u32) -> FragB {
    return coopLoadT<FragB>(&sh[o], s);
}

fn mma(a: FragA, b: FragB, c: FragC) -> FragC {
    return coopMultiplyAdd(a, b, c);
}

fn store_c(m: FragC, o: u32, s: u32) {
    coopStoreT(m, &s_tile[o], s);
}
#endif

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

// Scaled score of query qi with block column c (key kt + c), or NEG_MASK where not allowed.
fn score(row: u32, qi: u32, kt: u32, c: u32, k_end: u32) -> f32 {
    let key = kt + c;
    let dist = select(qi - key, key - qi, key > qi);
    let allowed = key < k_end && (p.windowed == 0u || dist <= p.window);
    return select(NEG_MASK, s_tile[row * SS + c] * p.scale, allowed);
}

@compute @workgroup_size(128)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
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
    let pair = wg.y + wg.z * nwg.y;
    let head = pair % p.n_heads;
    let seq = pair / p.n_heads;
    if seq >= p.segments {
        return;
    }
    let end = min(cu_seqlens[seq + 1u], p.rows);
    let start = min(cu_seqlens[seq], end);
    let len = end - start;
    let q0 = wg.x * BR;
    if q0 >= len {
        return;
    }
    let q_end = min(q0 + BR, len);
    var k_begin = 0u;
    var k_end = len;
    if p.windowed != 0u {
        k_begin = q0 - min(q0, p.window);
        k_end = min(len, q_end - 1u + p.window + 1u);
    }
    let h4 = p.qkv_stride / 3u;
    let col = head * D4;
    stage(0u, BR, q0, len, start, col, li);

    // This invocation's half row of the softmax and of the output.
    let row = li / 2u;
    let hf = li % 2u;
    let qi = q0 + row;
    var o: array<f32, DH>;
    var m = NEG_INIT;
    var l = 0.0;
    let q_frag = 16u * sg * LD;
    let p_frag = P_AT + 16u * sg * LP;
    let s_frag = 16u * sg * SS;
    for (var kt = k_begin; kt < k_end; kt += BC) {
        // The previous block's O_blk, P and V have been read by everyone (Q staged, at first).
        workgroupBarrier();
        stage(KV_AT, BC, kt, k_end, start, col + h4, li);
        workgroupBarrier();
        for (var n = 0u; n < BC / 16u; n++) {
            var acc = frag_zero();
            for (var kd = 0u; kd < D / 16u; kd++) {
                let a = load_a(q_frag + 16u * kd, LD);
                let b = load_b_col(KV_AT + 16u * n * LD + 16u * kd, LD);
                acc = mma(a, b, acc);
            }
            store_c(acc, s_frag + 16u * n, SS);
        }
        // S is complete and K no longer read: V replaces K while the softmax runs.
        workgroupBarrier();
        stage(KV_AT, BC, kt, k_end, start, col + 2u * h4, li);
        var bmax = NEG_INIT;
        for (var c = 0u; c < BC; c++) {
            bmax = max(bmax, score(row, qi, kt, c, k_end));
        }
        let m_new = max(m, bmax);
        let corr = exp2(m - m_new);
        m = m_new;
        var ls = 0.0;
        for (var c = hf * (BC / 2u); c < (hf + 1u) * (BC / 2u); c++) {
            let pj = f16(exp2(score(row, qi, kt, c, k_end) - m_new));
            sh[P_AT + row * LP + c] = pj;
            ls += f32(pj);
        }
        l = l * corr + ls;
        // P and V are staged, S no longer read: O_blk may overwrite it.
        workgroupBarrier();
        for (var n = 0u; n < D / 16u; n++) {
            var acc = frag_zero();
            for (var kk = 0u; kk < BC / 16u; kk++) {
                let a = load_a(p_frag + 16u * kk, LP);
                let b = load_b_row(KV_AT + 16u * kk * LD + 16u * n, LD);
                acc = mma(a, b, acc);
            }
            store_c(acc, s_frag + 16u * n, SS);
        }
        workgroupBarrier();
        for (var c = 0u; c < DH; c++) {
            o[c] = fma(o[c], corr, s_tile[row * SS + hf * DH + c]);
        }
    }

    // The two halves of a row hold partial sums of the same normaliser.
    workgroupBarrier();
    s_tile[li] = l;
    workgroupBarrier();
    let total = s_tile[2u * row] + s_tile[2u * row + 1u];
    if qi < len {
        let inv = select(0.0, 1.0 / total, total > 0.0);
        let o_at = (start + qi) * p.out_stride + col + hf * (D4 / 2u);
        for (var c4 = 0u; c4 < D4 / 2u; c4++) {
            let v = vec4<f32>(o[4u * c4], o[4u * c4 + 1u], o[4u * c4 + 2u], o[4u * c4 + 3u]);
            out[o_at + c4] = vec4<f16>(v * inv);
        }
    }
}
