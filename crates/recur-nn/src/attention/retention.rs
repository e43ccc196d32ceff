//! RetNet's multi-scale retention (Sun et al. 2023) as flash-linear-
//! attention's `MultiScaleRetention`:
//!
//! ```text
//! q, k = RoPE(W_q x), RoPE(W_k x);  v, g = W_v x, W_g x   (H heads)
//! S_t = γ_h S_{t−1} + k_t v_tᵀ,  γ_h = 1 − 2^(−5−h);  o_t = S_tᵀ q_t / √d_k
//! y = W_o (RMSNorm_head(o) ⊙ weight ⊙ silu(g))
//! ```
//!
//! Parameters `q_proj.weight`, `k_proj.weight`, `v_proj.weight` (expand_v
//! = 2: v and g are twice as wide), `g_proj.weight`,
//! `g_norm_swish_gate.weight` (d_v per head), `o_proj.weight`. The rotary
//! embedding is the non-interleaved one (rotate half) with base 10,000;
//! positions continue from [`AttentionState::pos`].

use recur_gpu::{Device, Error, Result, Rng, Tensor};

use super::{
    batch_len, engine, merge_heads, norm_swish_gate, proj, split_heads, state_matrix,
    AttentionState,
};
use crate::autograd::Var;
use crate::functional::{self as F, LinearAttentionVars, VarDecay};
use crate::linear::Linear;
use crate::module::{prefixed, Layer, Module};

/// Sizes of a [`Retention`].
#[derive(Clone, Copy, Debug)]
pub struct RetentionConfig {
    /// Model width (also the key width).
    pub d_model: usize,
    /// Heads H.
    pub heads: usize,
    /// Value width = expand_v · d_model (2).
    pub expand_v: usize,
    /// ε of the per-head RMSNorm (1e-5).
    pub norm_eps: f32,
    /// Rotary base (10,000).
    pub rope_base: f32,
    /// Steps per chunk of the engine (64).
    pub chunk: usize,
}

impl RetentionConfig {
    /// flash-linear-attention's defaults for `d_model` and `heads`.
    pub fn new(d_model: usize, heads: usize) -> Self {
        Self {
            d_model,
            heads,
            expand_v: 2,
            norm_eps: 1e-5,
            rope_base: 10_000.0,
            chunk: 64,
        }
    }

    /// Builds the layer (PyTorch's `nn.Linear` initialisation).
    pub fn init(&self, device: &Device, rng: &mut Rng) -> Result<Retention> {
        let (d, h) = (self.d_model, self.heads);
        let dv = self.expand_v * d;
        if d == 0 || h == 0 || !d.is_multiple_of(h) || !(d / h).is_multiple_of(2) || dv == 0 {
            return Err(Error::InvalidArgument {
                op: "RetentionConfig::init",
                what: format!("heads must divide d_model into even key widths: {self:?}"),
            });
        }
        let log_gamma: Vec<f32> = (0..h)
            .map(|i| (1.0 - 2f64.powi(-5 - i as i32)).ln() as f32)
            .collect();
        Ok(Retention {
            config: *self,
            q_proj: proj(device, rng, d, d)?,
            k_proj: proj(device, rng, d, d)?,
            v_proj: proj(device, rng, d, dv)?,
            g_proj: proj(device, rng, d, dv)?,
            norm_weight: Var::param(Tensor::full(device, &[dv / h], 1.0)?),
            o_proj: proj(device, rng, dv, d)?,
            log_gamma: Tensor::from_slice(device, &log_gamma, &[h])?,
        })
    }
}

/// Multi-scale retention.
#[derive(Clone, Debug)]
pub struct Retention {
    config: RetentionConfig,
    /// d_model → d_model.
    pub q_proj: Linear,
    /// d_model → d_model.
    pub k_proj: Linear,
    /// d_model → expand_v · d_model.
    pub v_proj: Linear,
    /// d_model → expand_v · d_model: the output gate.
    pub g_proj: Linear,
    /// (d_v per head): `g_norm_swish_gate.weight`.
    pub norm_weight: Var,
    /// expand_v · d_model → d_model.
    pub o_proj: Linear,
    /// (H): log γ_h, fixed.
    log_gamma: Tensor,
}

/// cos and sin of the rotary angles for positions `pos..pos + t` of each
/// stream's `pos`, as (T, H, d) tables when every stream is at the same
/// position, else (B, T, H, d) (the d/2 frequencies twice, for
/// rotate-half).
fn rope_tables(
    device: &Device,
    (positions, t, h, d): (&[usize], usize, usize, usize),
    base: f32,
) -> Result<(Tensor, Tensor)> {
    let same = positions.windows(2).all(|w| w[0] == w[1]);
    let rows = if same { &positions[..1] } else { positions };
    let mut cos = Vec::with_capacity(rows.len() * t * h * d);
    let mut sin = Vec::with_capacity(rows.len() * t * h * d);
    for &pos in rows {
        for p in pos..pos + t {
            for _ in 0..h {
                for i in 0..d {
                    let inv = (base as f64).powf(-2.0 * (i % (d / 2)) as f64 / d as f64);
                    let a = p as f64 * inv;
                    cos.push(a.cos() as f32);
                    sin.push(a.sin() as f32);
                }
            }
        }
    }
    let shape: Vec<usize> = if same {
        vec![t, h, d]
    } else {
        vec![rows.len(), t, h, d]
    };
    Ok((
        Tensor::from_slice(device, &cos, &shape)?,
        Tensor::from_slice(device, &sin, &shape)?,
    ))
}

/// x ⊙ cos + rotate_half(x) ⊙ sin, x (B, T, H, d), rotate_half(x) = (−x₂, x₁).
fn rope(x: &Var, cos: &Var, sin: &Var) -> Result<Var> {
    let d = x.shape()[3];
    let (x1, x2) = (F::slice(x, 3, 0, d / 2)?, F::slice(x, 3, d / 2, d / 2)?);
    let rot = F::concat(&[&F::scale(&x2, -1.0)?, &x1], 3)?;
    let at = 4 - cos.shape().len();
    F::add(&F::mul_at(x, cos, at)?, &F::mul_at(&rot, sin, at)?)
}

impl Retention {
    /// The configuration.
    pub fn config(&self) -> &RetentionConfig {
        &self.config
    }

    /// The sequence `x` (B, T, d_model) from `state` (zeros at position 0
    /// when absent): the output and the state after the last step
    /// ((B, H, d_k, d_v)).
    pub fn forward_with_state(
        &self,
        x: &Var,
        state: Option<&AttentionState>,
    ) -> Result<(Var, AttentionState)> {
        let (b, t) = batch_len("Retention::forward", x, self.config.d_model)?;
        let pos = state.map_or(0, |s| s.pos);
        let (y, last) = self.forward_positions(x, state.map(|s| &s.s), &vec![pos; b])?;
        Ok((
            y,
            AttentionState {
                s: last,
                pos: pos + t,
            },
        ))
    }

    /// The sequence from matrix state `s` (zeros when absent), stream b's
    /// rotary positions starting at `positions[b]`: the output and the last
    /// state. (Streams of a pool are at different positions.)
    pub fn forward_positions(
        &self,
        x: &Var,
        s: Option<&Var>,
        positions: &[usize],
    ) -> Result<(Var, Var)> {
        let op = "Retention::forward";
        let c = &self.config;
        let (b, t) = batch_len(op, x, c.d_model)?;
        if positions.len() != b {
            return Err(Error::ShapeMismatch {
                op,
                expected: format!("one position per stream ({b})"),
                got: vec![positions.len()],
            });
        }
        let h = c.heads;
        let (dk, dv) = (c.d_model / h, c.expand_v * c.d_model / h);
        let st = s.map(|s| AttentionState {
            s: s.clone(),
            pos: 0,
        });
        let h0 = state_matrix(op, st.as_ref(), [b, h, dk, dv])?;
        let dev = x.value().device(op)?;
        let (cos, sin) = rope_tables(&dev, (positions, t, h, dk), c.rope_base)?;
        let (cos, sin) = (Var::new(cos), Var::new(sin));
        let q = rope(&split_heads(&self.q_proj.forward(x)?, h)?, &cos, &sin)?;
        let q = F::scale(&q, 1.0 / (dk as f32).sqrt())?;
        let k = rope(&split_heads(&self.k_proj.forward(x)?, h)?, &cos, &sin)?;
        let v = split_heads(&self.v_proj.forward(x)?, h)?;
        let vars = LinearAttentionVars {
            q: &q,
            k: &k,
            v: &v,
            decay: VarDecay::Head(&self.log_gamma),
            h0,
        };
        let (o, last) = F::linear_attention(&vars, engine(c.chunk))?;
        let g = split_heads(&self.g_proj.forward(x)?, h)?;
        let o = merge_heads(&norm_swish_gate(&o, &g, &self.norm_weight, c.norm_eps)?)?;
        Ok((self.o_proj.forward(&o)?, last))
    }

    /// One token (B, d_model) from `state`; equal to the parallel form.
    pub fn step(&self, x: &Var, state: Option<&AttentionState>) -> Result<(Var, AttentionState)> {
        super::step_with(x, self.config.d_model, "Retention::step", |x| {
            self.forward_with_state(x, state)
        })
    }
}

impl Module for Retention {
    fn named_parameters(&self) -> Vec<(String, Var)> {
        let mut v = prefixed("q_proj", &self.q_proj);
        v.extend(prefixed("k_proj", &self.k_proj));
        v.extend(prefixed("v_proj", &self.v_proj));
        v.extend(prefixed("g_proj", &self.g_proj));
        v.push(("g_norm_swish_gate.weight".into(), self.norm_weight.clone()));
        v.extend(prefixed("o_proj", &self.o_proj));
        v
    }
}

impl Layer for Retention {
    fn forward(&self, x: &Var) -> Result<Var> {
        Ok(self.forward_with_state(x, None)?.0)
    }
}
