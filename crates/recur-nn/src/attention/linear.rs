//! Causal linear attention (Katharopoulos et al. 2020), multi-head:
//!
//! ```text
//! q, k, v = φ(W_q x), φ(W_k x), W_v x     φ = elu + 1, split into H heads
//! S_t = S_{t−1} + k_t v_tᵀ,  z_t = z_{t−1} + k_t
//! o_t = S_tᵀ q_t / (z_t · q_t + ε);   y = W_o o
//! ```
//!
//! Parameters `q_proj.weight`, `k_proj.weight`, `v_proj.weight`,
//! `o_proj.weight` (no biases). The normaliser rides along in the engine as
//! a column of ones appended to v.

use recur_gpu::ops::Activation;
use recur_gpu::{Device, Error, Result, Rng, Tensor};

use super::{batch_len, engine, merge_heads, proj, split_heads, state_matrix, AttentionState};
use crate::autograd::Var;
use crate::functional::{self as F, LinearAttentionVars, VarDecay};
use crate::linear::Linear;
use crate::module::{prefixed, Layer, Module};

/// Sizes of a [`LinearAttention`].
#[derive(Clone, Copy, Debug)]
pub struct LinearAttentionConfig {
    /// Model width (also the key and value width, split over the heads).
    pub d_model: usize,
    /// Heads H (dividing d_model).
    pub heads: usize,
    /// ε of the normaliser (1e-6).
    pub eps: f32,
    /// Steps per chunk of the engine (64).
    pub chunk: usize,
}

impl LinearAttentionConfig {
    /// `heads` heads over `d_model`.
    pub fn new(d_model: usize, heads: usize) -> Self {
        Self {
            d_model,
            heads,
            eps: 1e-6,
            chunk: 64,
        }
    }

    /// Builds the layer (PyTorch's `nn.Linear` initialisation).
    pub fn init(&self, device: &Device, rng: &mut Rng) -> Result<LinearAttention> {
        let d = self.d_model;
        if d == 0 || self.heads == 0 || !d.is_multiple_of(self.heads) {
            return Err(Error::InvalidArgument {
                op: "LinearAttentionConfig::init",
                what: format!("heads must divide a positive d_model: {self:?}"),
            });
        }
        Ok(LinearAttention {
            config: *self,
            q_proj: proj(device, rng, d, d)?,
            k_proj: proj(device, rng, d, d)?,
            v_proj: proj(device, rng, d, d)?,
            o_proj: proj(device, rng, d, d)?,
        })
    }
}

/// Multi-head causal linear attention.
#[derive(Clone, Debug)]
pub struct LinearAttention {
    config: LinearAttentionConfig,
    /// d_model → d_model.
    pub q_proj: Linear,
    /// d_model → d_model.
    pub k_proj: Linear,
    /// d_model → d_model.
    pub v_proj: Linear,
    /// d_model → d_model.
    pub o_proj: Linear,
}

impl LinearAttention {
    /// The configuration.
    pub fn config(&self) -> &LinearAttentionConfig {
        &self.config
    }

    /// The sequence `x` (B, T, d_model) from `state` (zeros when absent):
    /// the output (B, T, d_model) and the state after the last step
    /// ((B, H, d/H, d/H + 1): S, then z as the last column).
    pub fn forward_with_state(
        &self,
        x: &Var,
        state: Option<&AttentionState>,
    ) -> Result<(Var, AttentionState)> {
        let op = "LinearAttention::forward";
        let c = &self.config;
        let (b, t) = batch_len(op, x, c.d_model)?;
        let (h, dh) = (c.heads, c.d_model / c.heads);
        let h0 = state_matrix(op, state, [b, h, dh, dh + 1])?;
        let phi = |p: &Linear| -> Result<Var> {
            F::activation(&split_heads(&p.forward(x)?, h)?, Activation::Elu1)
        };
        let (q, k) = (phi(&self.q_proj)?, phi(&self.k_proj)?);
        let v = split_heads(&self.v_proj.forward(x)?, h)?;
        let dev = x.value().device(op)?;
        let ones = Var::new(Tensor::full(&dev, &[b, t, h, 1], 1.0)?);
        let v1 = F::concat(&[&v, &ones], 3)?;
        let vars = LinearAttentionVars {
            q: &q,
            k: &k,
            v: &v1,
            decay: VarDecay::None,
            h0,
        };
        let (o, last) = F::linear_attention(&vars, engine(c.chunk))?;
        let num = F::slice(&o, 3, 0, dh)?;
        let den = F::reshape(&F::slice(&o, 3, dh, 1)?, &[b, t, h])?;
        let eps = Var::new(Tensor::full(&dev, &[], c.eps)?);
        // 1 / (den + ε) = exp(−log(den + ε)); den > 0 since φ > 0.
        let log = F::activation(&F::add(&den, &eps)?, Activation::Log)?;
        let recip = F::activation(&F::scale(&log, -1.0)?, Activation::Exp)?;
        let o = merge_heads(&F::mul_at(&num, &recip, 0)?)?;
        let pos = state.map_or(0, |s| s.pos) + t;
        Ok((self.o_proj.forward(&o)?, AttentionState { s: last, pos }))
    }

    /// One token (B, d_model) from `state`; equal to the parallel form.
    pub fn step(&self, x: &Var, state: Option<&AttentionState>) -> Result<(Var, AttentionState)> {
        super::step_with(x, self.config.d_model, "LinearAttention::step", |x| {
            self.forward_with_state(x, state)
        })
    }
}

impl Module for LinearAttention {
    fn named_parameters(&self) -> Vec<(String, Var)> {
        let mut v = prefixed("q_proj", &self.q_proj);
        v.extend(prefixed("k_proj", &self.k_proj));
        v.extend(prefixed("v_proj", &self.v_proj));
        v.extend(prefixed("o_proj", &self.o_proj));
        v
    }
}

impl Layer for LinearAttention {
    fn forward(&self, x: &Var) -> Result<Var> {
        Ok(self.forward_with_state(x, None)?.0)
    }
}
