// Activation functions and their derivatives, shared by the elementwise
// kernels and the GEMM epilogue. Codes match `recur_gpu::ops::Activation`.
//
// Written to stay finite for any finite input: no exp of a large positive
// number, no division by a value that can round to zero.

const ACT_IDENTITY: u32 = 0u;
const ACT_SIGMOID: u32 = 1u;
const ACT_TANH: u32 = 2u;
const ACT_RELU: u32 = 3u;
const ACT_SILU: u32 = 4u;
const ACT_SOFTPLUS: u32 = 5u;
const ACT_ELU1: u32 = 6u;
const ACT_EXP: u32 = 7u;
const ACT_LOG: u32 = 8u;
const ACT_NEG: u32 = 9u;
const ACT_SQUARE: u32 = 10u;
const ACT_LOG_SIGMOID: u32 = 11u;
const ACT_LOG_G: u32 = 12u;

fn sigmoid_f(x: f32) -> f32 {
    let e = exp(-abs(x));
    return select(e / (1.0 + e), 1.0 / (1.0 + e), x >= 0.0);
}

fn tanh_f(x: f32) -> f32 {
    let e = exp(-2.0 * abs(x));
    return sign(x) * (1.0 - e) / (1.0 + e);
}

fn softplus_f(x: f32) -> f32 {
    return max(x, 0.0) + log(1.0 + exp(-abs(x)));
}

fn activate(x: f32, act: u32) -> f32 {
    switch act {
        case 1u: { return sigmoid_f(x); }
        case 2u: { return tanh_f(x); }
        case 3u: { return max(x, 0.0); }
        case 4u: { return x * sigmoid_f(x); }
        case 5u: { return softplus_f(x); }
        case 6u: { return select(exp(x), x + 1.0, x > 0.0); }
        case 7u: { return exp(x); }
        case 8u: { return log(x); }
        case 9u: { return -x; }
        case 10u: { return x * x; }
        case 11u: { return -softplus_f(-x); }
        case 12u: { return select(-softplus_f(-x), log(x + 0.5), x >= 0.0); }
        default: { return x; }
    }
}

// d activate(x) / dx, from the input x.
fn activate_grad(x: f32, act: u32) -> f32 {
    switch act {
        case 1u: { let s = sigmoid_f(x); return s * (1.0 - s); }
        case 2u: { let t = tanh_f(x); return 1.0 - t * t; }
        case 3u: { return select(0.0, 1.0, x > 0.0); }
        case 4u: { let s = sigmoid_f(x); return s * (1.0 + x * (1.0 - s)); }
        case 5u: { return sigmoid_f(x); }
        case 6u: { return select(exp(x), 1.0, x > 0.0); }
        case 7u: { return exp(x); }
        case 8u: { return 1.0 / x; }
        case 9u: { return -1.0; }
        case 10u: { return 2.0 * x; }
        case 11u: { return sigmoid_f(-x); }
        case 12u: { return select(sigmoid_f(-x), 1.0 / (x + 0.5), x >= 0.0); }
        default: { return 1.0; }
    }
}
