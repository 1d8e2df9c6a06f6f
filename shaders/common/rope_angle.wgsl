// The rotary angle and its sine and cosine, shared by shaders/rope.wgsl and the RoPE epilogue
// of common/matmul_epilogue.wgsl.
// Precision: the angle is the reference's f32 angle bit for bit (integer emulation of the
// rounded product, immune to mul+add contraction), and sin/cos are evaluated with a Cody-Waite
// reduction by pi/2 (short constants, exact products) and minimax polynomials, so the error is
// ~2e-7 absolute for positions below 65536, instead of the ~5e-4 that a bare WGSL sin/cos of
// an 8192-radian argument is allowed to make.

// round_to_f32(pos * inv) for pos < 2^24 and a normal positive inv, computed in integers so
// that no compiler can fuse the multiply into a later add (which would change the angle).
fn angle(pos: u32, inv_bits: u32) -> f32 {
    let m = (inv_bits & 0x7fffffu) | 0x800000u;
    let e = i32((inv_bits >> 23u) & 0xffu) - 150;
    if pos >= 0x1000000u || ((inv_bits >> 23u) & 0xffu) == 0u {
        return f32(pos) * bitcast<f32>(inv_bits);
    }
    // 48-bit product pos * m as hi * 2^24 + lo, from 12-bit halves.
    let p0 = pos & 0xfffu;
    let p1 = pos >> 12u;
    let m0 = m & 0xfffu;
    let m1 = m >> 12u;
    let mid = p1 * m0 + p0 * m1;
    let lo_full = p0 * m0 + ((mid & 0xfffu) << 12u);
    let lo = lo_full & 0xffffffu;
    let hi = p1 * m1 + (mid >> 12u) + (lo_full >> 24u);
    if hi == 0u {
        // Fits 24 bits: exact; scaling by a power of two is exact too.
        return f32(lo) * bitcast<f32>(u32(e + 127) << 23u);
    }
    let n = 32u - countLeadingZeros(hi);
    var top = (hi << (24u - n)) | (lo >> n);
    let rem = lo & ((1u << n) - 1u);
    let halfway = 1u << (n - 1u);
    if rem > halfway || (rem == halfway && (top & 1u) == 1u) {
        top += 1u;
    }
    // top in [2^23, 2^24]: adding the mantissa carries into the exponent when top == 2^24.
    return bitcast<f32>((u32(e + i32(n) + 150) << 23u) + (top - 0x800000u));
}

// (sin, cos) of an f32 angle, |x| < ~1e5.
fn sincos(x: f32) -> vec2<f32> {
    let k = round(x * 0.63661977236758134);
    // pi/2 = C1 + C2 + C3 + C4, C1..C3 with <= 8 significant bits: k * Ci is exact for k < 2^16.
    var r = x - k * 1.5703125;
    r = r - k * 4.825592041015625e-4;
    r = r - k * 1.2665987014770508e-6;
    r = r - k * 9.920936294705e-10;
    let r2 = r * r;
    // Cephes sinf/cosf minimax polynomials on [-pi/4, pi/4].
    let s = r + r * r2 * (-1.6666654611e-1 + r2 * (8.3321608736e-3 + r2 * -1.9515295891e-4));
    let c = 1.0 - 0.5 * r2 + r2 * r2 * (4.166664568298827e-2 + r2 * (-1.388731625493765e-3 + r2 * 2.443315711809948e-5));
    let q = i32(k) & 3;
    if q == 0 {
        return vec2<f32>(s, c);
    } else if q == 1 {
        return vec2<f32>(c, -s);
    } else if q == 2 {
        return vec2<f32>(-s, -c);
    }
    return vec2<f32>(-c, s);
}
