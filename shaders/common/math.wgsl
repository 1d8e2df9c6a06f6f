// Shared math for kernels: exact-erf GELU and friends, all in f32.
// erf uses Abramowitz-Stegun 7.1.26 refined (max abs error ~1.5e-7 in f32 arithmetic).

fn erf_f32(x: f32) -> f32 {
    // A&S 7.1.26: erf(x) = 1 - (a1 t + ... + a5 t^5) exp(-x^2), t = 1 / (1 + p x), x >= 0.
    let s = sign(x);
    let a = abs(x);
    let t = 1.0 / (1.0 + 0.3275911 * a);
    let y = 1.0 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * exp(-a * a);
    return s * y;
}

// Activations; kernels pick one through their ACT define (act_gelu, act_silu, ...).
fn act_gelu(x: f32) -> f32 {
    return 0.5 * x * (1.0 + erf_f32(x * 0.70710678118654752));
}

fn act_gelu_tanh(x: f32) -> f32 {
    let c = 0.7978845608028654;
    return 0.5 * x * (1.0 + tanh(c * (x + 0.044715 * x * x * x)));
}

fn act_silu(x: f32) -> f32 {
    return x / (1.0 + exp(-x));
}

fn act_relu(x: f32) -> f32 {
    return max(x, 0.0);
}
