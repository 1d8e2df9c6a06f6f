// Row reductions for kernels that give one workgroup of RN_WG threads to a row of `hidden`
// values held in registers: thread `lid` owns columns lid + j * RN_WG, j < RN_PT (the PT
// define, a power of two chosen by the host from `hidden`), and holds 0 past the row's end.
// rn_sum reduces with a shared-memory tree, or, with the SUBGROUP define, with subgroupAdd
// and one partial per subgroup (2 barriers instead of 9). In the SUBGROUP variant the entry
// point sets `rn_sg` = (subgroup_id, num_subgroups, subgroup_invocation_id) first.
// Every call must be reached by the whole workgroup (uniform control flow).

const RN_WG: u32 = 128u;
const RN_PT: u32 = {{PT}}u;

var<workgroup> rn_partial: array<f32, RN_WG>;

#if SUBGROUP
var<private> rn_sg: vec3<u32>;

fn rn_sum(v: f32, lid: u32) -> f32 {
    let s = subgroupAdd(v);
    if rn_sg.z == 0u {
        rn_partial[rn_sg.x] = s;
    }
    workgroupBarrier();
    var t = 0.0;
    for (var i = 0u; i < rn_sg.y; i++) {
        t += rn_partial[i];
    }
    workgroupBarrier();
    return t;
}
#else
fn rn_sum(v: f32, lid: u32) -> f32 {
    rn_partial[lid] = v;
    workgroupBarrier();
    for (var s = RN_WG / 2u; s > 0u; s >>= 1u) {
        if lid < s {
            rn_partial[lid] += rn_partial[lid + s];
        }
        workgroupBarrier();
    }
    let t = rn_partial[0];
    workgroupBarrier();
    return t;
}
#endif

// (mean, 1 / sqrt(var + eps)) of the row in `v`: two passes over the registers (population
// variance of the centred values, no E[x^2] - E[x]^2 cancellation).
fn rn_stats(v: ptr<function, array<f32, RN_PT>>, lid: u32, hidden: u32, eps: f32) -> vec2<f32> {
    var s = 0.0;
    for (var j = 0u; j < RN_PT; j++) {
        s += (*v)[j];
    }
    let mean = rn_sum(s, lid) / f32(hidden);
    // Slots j < n of this thread hold values: a test of another form than the callers' own
    // `column < hidden`, so the compiler does not keep its PT outcomes across the barriers
    // for them (on NVIDIA, predicates spilled to registers).
    let n = (hidden + RN_WG - 1u - lid) / RN_WG;
    var q = 0.0;
    for (var j = 0u; j < RN_PT; j++) {
        if j < n {
            let d = (*v)[j] - mean;
            q += d * d;
        }
    }
    let var_ = rn_sum(q, lid) / f32(hidden);
    return vec2<f32>(mean, 1.0 / sqrt(var_ + eps));
}
