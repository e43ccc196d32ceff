//! Plain-Rust twins of every kernel, written with the same loop structure and
//! f64 accumulation. Tests compare the GPU against these.

mod conv1d;
mod gemm;
mod linear_attention;
mod norm;
mod rnn;
mod rows;
mod scan;
mod selective_scan;

pub use conv1d::{causal_conv1d, causal_conv1d_backward};
pub use gemm::gemm;
pub use linear_attention::{
    linear_attention, linear_attention_backward, LaDecay, LaDims, LaRefGrads, LaRefInputs,
};
pub use norm::{norm, norm_backward};
pub use rnn::{rnn_backward, rnn_forward, RnnDims, RnnForward, RnnGrads, RnnParams};
pub use rows::{
    concat, cross_entropy, dropout_mask, embedding, embedding_backward, reduce, slice, softmax,
    transpose,
};
pub use scan::{
    combine_linear, combine_log, linear_scan, linear_scan_backward, log_scan, log_scan_backward,
    logaddexp,
};
pub use selective_scan::{selective_scan, selective_scan_backward, SsDims, SsGrads, SsInputs};

use crate::ops::Activation;

fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// `act(x)`, in f64.
pub fn activate(x: f64, act: Activation) -> f64 {
    match act {
        Activation::Identity => x,
        Activation::Sigmoid => sigmoid(x),
        Activation::Tanh => x.tanh(),
        Activation::Relu => x.max(0.0),
        Activation::Silu => x * sigmoid(x),
        Activation::Softplus => x.max(0.0) + (-x.abs()).exp().ln_1p(),
        Activation::Elu1 => {
            if x > 0.0 {
                x + 1.0
            } else {
                x.exp()
            }
        }
        Activation::Exp => x.exp(),
        Activation::Log => x.ln(),
        Activation::Neg => -x,
        Activation::Square => x * x,
        Activation::LogSigmoid => sigmoid(x).ln(),
        Activation::LogG => {
            if x >= 0.0 {
                (x + 0.5).ln()
            } else {
                sigmoid(x).ln()
            }
        }
    }
}

/// `d act(x) / dx`, in f64.
pub fn activate_grad(x: f64, act: Activation) -> f64 {
    match act {
        Activation::Identity => 1.0,
        Activation::Sigmoid => sigmoid(x) * (1.0 - sigmoid(x)),
        Activation::Tanh => 1.0 - x.tanh().powi(2),
        Activation::Relu => (x > 0.0) as u8 as f64,
        Activation::Silu => sigmoid(x) * (1.0 + x * (1.0 - sigmoid(x))),
        Activation::Softplus => sigmoid(x),
        Activation::Elu1 => {
            if x > 0.0 {
                1.0
            } else {
                x.exp()
            }
        }
        Activation::Exp => x.exp(),
        Activation::Log => 1.0 / x,
        Activation::Neg => -1.0,
        Activation::Square => 2.0 * x,
        Activation::LogSigmoid => sigmoid(-x),
        Activation::LogG => {
            if x >= 0.0 {
                1.0 / (x + 0.5)
            } else {
                sigmoid(-x)
            }
        }
    }
}

/// `act(alpha * x + beta)` elementwise.
pub fn unary(x: &[f32], act: Activation, alpha: f32, beta: f32) -> Vec<f32> {
    x.iter()
        .map(|&v| activate(alpha as f64 * v as f64 + beta as f64, act) as f32)
        .collect()
}

/// `dy * act'(x)` elementwise.
pub fn unary_backward(x: &[f32], dy: &[f32], act: Activation) -> Vec<f32> {
    x.iter()
        .zip(dy)
        .map(|(&v, &g)| (g as f64 * activate_grad(v as f64, act)) as f32)
        .collect()
}

/// `a op b[i % len(b)]`.
pub fn binary(a: &[f32], b: &[f32], op: crate::ops::elementwise::BinaryOp, alpha: f32) -> Vec<f32> {
    use crate::ops::elementwise::BinaryOp::*;
    a.iter()
        .enumerate()
        .map(|(i, &x)| {
            let y = b[i % b.len()];
            match op {
                Add => x + alpha * y,
                Sub => x - alpha * y,
                Mul => x * y,
                Div => x / y,
            }
        })
        .collect()
}
