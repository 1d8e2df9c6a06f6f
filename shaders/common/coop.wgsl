// Cooperative-matrix fragments shared by matmul_coop.wgsl and attention_coop.wgsl: FM x FN x
// FK products (the shape the adapter reports: 16x16x16, 16x8x16, 16x8x8, 8x16x16, 8x8x16 or
// 8x8x8), f16 operands, f32 accumulators; A is FM x FK, B is FK x FN, C is FM x FN. The
// including shader declares the workgroup arrays `sh` (f16: every A and B operand) and `ct`
// (f32: where accumulators are stored).
//   load_a(o, s):     A (r, k) = sh[o + r * s + k]   (row-major)
//   load_b_col(o, s): B (k, n) = sh[o + n * s + k]   (a row of W or of K is a column of B)
//   load_b_row(o, s): B (k, n) = sh[o + k * s + n]   (rows of V)
//   store_c(m, o, s): ct[o + r * s + c] = C (r, c)
// Offsets and strides are in elements; cooperative loads and stores want 16-byte multiples.
// naga 30: the pointer index and the stride of every cooperative load/store are function
// arguments (values already computed), never inline expressions or uniform fields (GPU.md).
// naga 30's WGSL spells square fragments only (coop_mat8x8, coop_mat16x16): COOP is one of
// them, and a non-square shape is given to the types after parsing (runtime::shader::
// reshape_coop, by role), so each role has one type here.
// Cooperative operations run in subgroup-uniform control flow: callers branch on the
// subgroup index only.
// EMULATE (tests only): plain loops, so the kernels' tiling runs on adapters without
// cooperative matrices. Subgroups are SG lanes wide (the SG define); an A or B fragment is
// its place in sh, read when multiplied (callers do not rewrite a block in between); a C
// fragment holds this lane's FRAG_PER elements, element e of lane l being index i =
// FRAG_PER l + e at (i / FN, i % FN), spread over the lanes as a real one is. The including
// shader sets `lane` before the first fragment operation.

const FM: u32 = {{FM}}u;
const FN: u32 = {{FN}}u;
const FK: u32 = {{FK}}u;

#if EMULATE
const FRAG_PER: u32 = FM * FN / {{SG}}u;

// Element (i, j) at sh[o + i * si + j * sj].
struct FragA {
    o: u32,
    si: u32,
    sj: u32,
}
alias FragB = FragA;
alias FragC = array<f32, FRAG_PER>;
var<private> lane: u32;

fn frag_zero() -> FragC {
    return FragC();
}

fn load_a(o: u32, s: u32) -> FragA {
    return FragA(o, s, 1u);
}

fn load_b_col(o: u32, s: u32) -> FragB {
    return FragB(o, 1u, s);
}

fn load_b_row(o: u32, s: u32) -> FragB {
    return FragB(o, s, 1u);
}

fn mma(a: FragA, b: FragB, c: FragC) -> FragC {
    var d = c;
    for (var e = 0u; e < FRAG_PER; e++) {
        let r = (lane * FRAG_PER + e) / FN;
        let n = (lane * FRAG_PER + e) % FN;
        var acc = d[e];
        for (var k = 0u; k < FK; k++) {
            let av = f32(sh[a.o + r * a.si + k * a.sj]);
            acc = fma(av, f32(sh[b.o + k * b.si + n * b.sj]), acc);
        }
        d[e] = acc;
    }
    return d;
}

fn store_c(m: FragC, o: u32, s: u32) {
    var fm = m;
    for (var e = 0u; e < FRAG_PER; e++) {
        let r = (lane * FRAG_PER + e) / FN;
        let c = (lane * FRAG_PER + e) % FN;
        ct[o + r * s + c] = fm[e];
    }
}
#else
alias FragA = coop_mat{{COOP}}<f16, A>;
alias FragB = coop_mat{{COOP}}<f16, B>;
alias FragC = coop_mat{{COOP}}<f32, C>;

fn frag_zero() -> FragC {
    return FragC();
}

fn load_a(o: u32, s: u32) -> FragA {
    return coopLoadT<FragA>(&sh[o], s);
}

fn load_b_col(o: u32, s: u32) -> FragB {
    return coopLoad<FragB>(&sh[o], s);
}

fn load_b_row(o: u32, s: u32) -> FragB {
    return coopLoadT<FragB>(&sh[o], s);
}

fn mma(a: FragA, b: FragB, c: FragC) -> FragC {
    return coopMultiplyAdd(a, b, c);
}

fn store_c(m: FragC, o: u32, s: u32) {
    coopStoreT(m, &ct[o], s);
}
#endif
