//! Gated linear attention (Yang et al. 2024) as flash-linear-attention's
//! `GatedLinearAttention` layer:
//!
//! ```text
//! q, k, v, g = W_q x, W_k x, W_v x, W_g x            (H heads; expand_k = ½)
//! log α = logsigmoid(W_gk2 (W_gk1 x) + b) / 16     (low-rank gate, rank 16)
//! S_t = diag(α_t) S_{t−1} + k_t v_tᵀ;  o_t = S_tᵀ q_t / √d_k
//! y = W_o (RMSNorm_head(o) ⊙ weight ⊙ silu(g))
//! ```
//!
//! Parameters `q_proj.weight`, `k_proj.weight`, `v_proj.weight`,
//! `g_proj.weight`, `gk_proj.0.weight`, `gk_proj.1.weight`,
//! `gk_proj.1.bias`, `g_norm_swish_gate.weight`, `o_proj.weight`.

use recur_gpu::ops::Activation;
use recur_gpu::{Device, Error, Result, Rng, Tensor};

use super::{
    batch_len, engine, merge_heads, norm_swish_gate, proj, split_heads, state_matrix,
    AttentionState,
};
use crate::autograd::Var;
use crate::functional::{self as F, LinearAttentionVars, VarDecay};
use crate::linear::{Linear, LinearConfig};
use crate::module::{prefixed, Layer, Module};

/// Sizes of a [`GatedLinearAttention`].
#[derive(Clone, Copy, Debug)]
pub struct GlaConfig {
    /// Model width (also the value width).
    pub d_model: usize,
    /// Heads H.
    pub heads: usize,
    /// Key width = d_model / key_divisor (2: flash-linear-attention's
    /// expand_k = 0.5).
    pub key_divisor: usize,
    /// Rank of the gate projection (16).
    pub gate_low_rank: usize,
    /// log α is divided by this (16).
    pub gate_logit_normalizer: f32,
    /// ε of the per-head RMSNorm (1e-5).
    pub norm_eps: f32,
    /// Steps per chunk of the engine (64).
    pub chunk: usize,
}

impl GlaConfig {
    /// flash-linear-attention's defaults for `d_model` and `heads`.
    pub fn new(d_model: usize, heads: usize) -> Self {
        Self {
            d_model,
            heads,
            key_divisor: 2,
            gate_low_rank: 16,
            gate_logit_normalizer: 16.0,
            norm_eps: 1e-5,
            chunk: 64,
        }
    }

    /// Builds the layer (PyTorch's `nn.Linear` initialisation).
    pub fn init(&self, device: &Device, rng: &mut Rng) -> Result<GatedLinearAttention> {
        let (d, h) = (self.d_model, self.heads);
        let kd = d / self.key_divisor.max(1);
        let ok = d > 0
            && h > 0
            && self.key_divisor > 0
            && kd > 0
            && kd.is_multiple_of(h)
            && d.is_multiple_of(h)
            && self.gate_low_rank > 0
            && self.gate_logit_normalizer > 0.0;
        if !ok {
            return Err(Error::InvalidArgument {
                op: "GlaConfig::init",
                what: format!("heads must divide the key and value widths: {self:?}"),
            });
        }
        Ok(GatedLinearAttention {
            config: *self,
            q_proj: proj(device, rng, d, kd)?,
            k_proj: proj(device, rng, d, kd)?,
            v_proj: proj(device, rng, d, d)?,
            g_proj: proj(device, rng, d, d)?,
            gk_down: proj(device, rng, d, self.gate_low_rank)?,
            gk_up: LinearConfig::new(self.gate_low_rank, kd).init(device, rng)?,
            norm_weight: Var::param(Tensor::full(device, &[d / h], 1.0)?),
            o_proj: proj(device, rng, d, d)?,
        })
    }
}

/// Gated linear attention.
#[derive(Clone, Debug)]
pub struct GatedLinearAttention {
    config: GlaConfig,
    /// d_model → key width.
    pub q_proj: Linear,
    /// d_model → key width.
    pub k_proj: Linear,
    /// d_model → d_model.
    pub v_proj: Linear,
    /// d_model → d_model: the output gate.
    pub g_proj: Linear,
    /// d_model → gate rank (`gk_proj.0`).
    pub gk_down: Linear,
    /// gate rank → key width, with bias (`gk_proj.1`).
    pub gk_up: Linear,
    /// (d_v per head): `g_norm_swish_gate.weight`.
    pub norm_weight: Var,
    /// d_model → d_model.
    pub o_proj: Linear,
}

impl GatedLinearAttention {
    /// The configuration.
    pub fn config(&self) -> &GlaConfig {
        &self.config
    }

    /// The sequence `x` (B, T, d_model) from `state` (zeros when absent):
    /// the output and the state after the last step ((B, H, d_k, d_v)).
    pub fn forward_with_state(
        &self,
        x: &Var,
        state: Option<&AttentionState>,
    ) -> Result<(Var, AttentionState)> {
        let op = "GatedLinearAttention::forward";
        let c = &self.config;
        let (b, t) = batch_len(op, x, c.d_model)?;
        let h = c.heads;
        let kd = c.d_model / c.key_divisor;
        let (dk, dv) = (kd / h, c.d_model / h);
        let h0 = state_matrix(op, state, [b, h, dk, dv])?;
        let q = split_heads(&self.q_proj.forward(x)?, h)?;
        let q = F::scale(&q, 1.0 / (dk as f32).sqrt())?;
        let k = split_heads(&self.k_proj.forward(x)?, h)?;
        let v = split_heads(&self.v_proj.forward(x)?, h)?;
        let gk = self.gk_up.forward(&self.gk_down.forward(x)?)?;
        let gk = F::activation(&gk, Activation::LogSigmoid)?;
        let gk = split_heads(&F::scale(&gk, 1.0 / c.gate_logit_normalizer)?, h)?;
        let vars = LinearAttentionVars {
            q: &q,
            k: &k,
            v: &v,
            decay: VarDecay::Vector(&gk),
            h0,
        };
        let (o, last) = F::linear_attention(&vars, engine(c.chunk))?;
        let g = split_heads(&self.g_proj.forward(x)?, h)?;
        let o = merge_heads(&norm_swish_gate(&o, &g, &self.norm_weight, c.norm_eps)?)?;
        let pos = state.map_or(0, |s| s.pos) + t;
        Ok((self.o_proj.forward(&o)?, AttentionState { s: last, pos }))
    }

    /// One token (B, d_model) from `state`; equal to the parallel form.
    pub fn step(&self, x: &Var, state: Option<&AttentionState>) -> Result<(Var, AttentionState)> {
        super::step_with(x, self.config.d_model, "GatedLinearAttention::step", |x| {
            self.forward_with_state(x, state)
        })
    }
}

impl Module for GatedLinearAttention {
    fn named_parameters(&self) -> Vec<(String, Var)> {
        let mut v = prefixed("q_proj", &self.q_proj);
        v.extend(prefixed("k_proj", &self.k_proj));
        v.extend(prefixed("v_proj", &self.v_proj));
        v.extend(prefixed("g_proj", &self.g_proj));
        v.extend(prefixed("gk_proj.0", &self.gk_down));
        v.extend(prefixed("gk_proj.1", &self.gk_up));
        v.push(("g_norm_swish_gate.weight".into(), self.norm_weight.clone()));
        v.extend(prefixed("o_proj", &self.o_proj));
        v
    }
}

impl Layer for GatedLinearAttention {
    fn forward(&self, x: &Var) -> Result<Var> {
        Ok(self.forward_with_state(x, None)?.0)
    }
}
