//! Mamba-2 (Dao & Gu 2024) as `mamba_ssm.modules.mamba2.Mamba2` (and
//! Hugging Face transformers' `Mamba2Mixer`), with the defaults
//! `norm_before_gate=False`, `D_has_hdim=False`, `dt_limit=(0, ∞)`:
//!
//! ```text
//! (z, xBC, dt) = in_proj(u)                    (no bias)
//! (x, B, C) = silu(causal depthwise conv1d(xBC) + conv bias)
//! Δ = softplus(dt + dt_bias);  A = −exp(A_log)           (per head)
//! S_t = e^{Δ_t A} S_{t−1} + B_t (Δ_t x_t)ᵀ;  y_t = S_tᵀ C_t + D x_t
//! out = out_proj(RMSNorm_groups(y ⊙ silu(z)) ⊙ norm.weight)
//! ```
//!
//! The SSD recurrence is the chunked linear-attention engine with q = C,
//! k = B, v = Δ·x and the scalar log-decay Δ_t A_h per head and step.
//! Parameter names are mamba_ssm's and Hugging Face's (`in_proj.weight`,
//! `conv1d.weight` (conv_dim, 1, d_conv), `conv1d.bias`, `dt_bias`, `A_log`,
//! `D`, `norm.weight`, `out_proj.weight`). The state is Hugging Face's
//! inference cache: conv (B, conv_dim, d_conv), ssm (B, H, headdim, d_state).

use recur_gpu::ops::linear_attention::{ChunkedAttention, LaLayout};
use recur_gpu::ops::Activation;
use recur_gpu::{Device, Error, Result, Rng, Tensor};

use crate::autograd::Var;
use crate::functional::{self as F, LinearAttentionVars, VarDecay};
use crate::linear::{Linear, LinearConfig};
use crate::mamba::conv_silu_with_state;
use crate::module::{prefixed, Layer, Module};

/// `Mamba2(d_model, ...)`'s arguments.
#[derive(Clone, Copy, Debug)]
pub struct Mamba2Config {
    /// Model width.
    pub d_model: usize,
    /// State size N per head (128).
    pub d_state: usize,
    /// Width of the causal convolution (4).
    pub d_conv: usize,
    /// d_inner = expand · d_model (2).
    pub expand: usize,
    /// Channels per head P (64); heads H = d_inner / P.
    pub headdim: usize,
    /// Groups of heads sharing B and C (1).
    pub ngroups: usize,
    /// A starts uniform in this range (1, 16).
    pub a_init_range: (f32, f32),
    /// softplus(dt_bias) starts log-uniform in [dt_min, dt_max] (0.001,
    /// 0.1), at least `dt_init_floor` (1e-4).
    pub dt_min: f32,
    /// See `dt_min`.
    pub dt_max: f32,
    /// See `dt_min`.
    pub dt_init_floor: f32,
    /// The gated RMSNorm's ε (1e-5).
    pub norm_eps: f32,
    /// The convolution has a bias (true).
    pub conv_bias: bool,
    /// Steps per chunk of the engine (64).
    pub chunk: usize,
}

impl Mamba2Config {
    /// mamba_ssm's defaults for `d_model`.
    pub fn new(d_model: usize) -> Self {
        Self {
            d_model,
            d_state: 128,
            d_conv: 4,
            expand: 2,
            headdim: 64,
            ngroups: 1,
            a_init_range: (1.0, 16.0),
            dt_min: 0.001,
            dt_max: 0.1,
            dt_init_floor: 1e-4,
            norm_eps: 1e-5,
            conv_bias: true,
            chunk: 64,
        }
    }

    /// d_inner.
    pub fn d_inner(&self) -> usize {
        self.expand * self.d_model
    }

    /// Heads H.
    pub fn heads(&self) -> usize {
        self.d_inner() / self.headdim.max(1)
    }

    /// Channels of the convolution: x, B and C.
    pub fn conv_dim(&self) -> usize {
        self.d_inner() + 2 * self.ngroups * self.d_state
    }

    /// Builds the layer with mamba_ssm's initialisation.
    pub fn init(&self, device: &Device, rng: &mut Rng) -> Result<Mamba2> {
        let (di, h, w, cd) = (self.d_inner(), self.heads(), self.d_conv, self.conv_dim());
        let ok = self.d_model > 0
            && self.d_state > 0
            && w > 0
            && self.headdim > 0
            && self.ngroups > 0
            && di.is_multiple_of(self.headdim)
            && h.is_multiple_of(self.ngroups)
            && h > 0
            && self.a_init_range.0 > 0.0
            && self.a_init_range.0 <= self.a_init_range.1;
        if !ok {
            return Err(Error::InvalidArgument {
                op: "Mamba2Config::init",
                what: format!(
                    "positive sizes, headdim dividing d_inner, ngroups dividing the heads, \
                     0 < A range: {self:?}"
                ),
            });
        }
        let no_bias = |i, o| LinearConfig {
            bias: false,
            ..LinearConfig::new(i, o)
        };
        let in_proj = no_bias(self.d_model, 2 * di + 2 * self.ngroups * self.d_state + h)
            .init(device, rng)?;
        let k = 1.0 / (w as f32).sqrt();
        let conv_weight = Tensor::rand(device, &[cd, 1, w], -k, k, rng)?;
        let conv_bias = if self.conv_bias {
            Some(Var::param(Tensor::rand(device, &[cd], -k, k, rng)?))
        } else {
            None
        };
        let (lo, hi) = (self.dt_min.ln(), self.dt_max.ln());
        let dt_bias: Vec<f32> = (0..h)
            .map(|_| {
                let dt = (lo + rng.next_f32() * (hi - lo))
                    .exp()
                    .max(self.dt_init_floor);
                dt + (-(-dt).exp_m1()).ln()
            })
            .collect();
        let (alo, ahi) = self.a_init_range;
        let a_log: Vec<f32> = (0..h)
            .map(|_| (alo + rng.next_f32() * (ahi - alo)).ln())
            .collect();
        Ok(Mamba2 {
            config: *self,
            in_proj,
            conv_weight: Var::param(conv_weight),
            conv_bias,
            dt_bias: Var::param(Tensor::from_slice(device, &dt_bias, &[h])?),
            a_log: Var::param(Tensor::from_slice(device, &a_log, &[h])?),
            d: Var::param(Tensor::full(device, &[h], 1.0)?),
            norm_weight: Var::param(Tensor::full(device, &[di], 1.0)?),
            out_proj: no_bias(di, self.d_model).init(device, rng)?,
        })
    }
}

/// One Mamba-2 layer's state between calls, in Hugging Face's inference-cache
/// layout.
#[derive(Clone, Debug)]
pub struct Mamba2State {
    /// (B, conv_dim, d_conv): the convolution's last d_conv inputs, oldest
    /// first.
    pub conv: Var,
    /// (B, H, headdim, d_state).
    pub ssm: Var,
}

/// A Mamba-2 mixer layer; parameters public under mamba_ssm's names.
#[derive(Clone, Debug)]
pub struct Mamba2 {
    config: Mamba2Config,
    /// d_model → 2·d_inner + 2·ngroups·d_state + H: (z, x, B, C, dt).
    pub in_proj: Linear,
    /// (conv_dim, 1, d_conv).
    pub conv_weight: Var,
    /// (conv_dim).
    pub conv_bias: Option<Var>,
    /// (H): added to dt before the softplus.
    pub dt_bias: Var,
    /// (H): A = −exp(A_log).
    pub a_log: Var,
    /// (H): the skip term D·x.
    pub d: Var,
    /// (d_inner): the gated RMSNorm's weight.
    pub norm_weight: Var,
    /// d_inner → d_model, no bias.
    pub out_proj: Linear,
}

impl Mamba2 {
    /// The configuration.
    pub fn config(&self) -> &Mamba2Config {
        &self.config
    }

    /// A zero state for a batch of `b`.
    pub fn zero_state(&self, device: &Device, b: usize) -> Result<Mamba2State> {
        let c = &self.config;
        Ok(Mamba2State {
            conv: Var::new(Tensor::zeros(device, &[b, c.conv_dim(), c.d_conv])?),
            ssm: Var::new(Tensor::zeros(
                device,
                &[b, c.heads(), c.headdim, c.d_state],
            )?),
        })
    }

    /// The whole sequence `u` (B, L, d_model) in parallel from `state` (zeros
    /// when absent): the output (B, L, d_model) and the state after the last
    /// step.
    pub fn forward_with_state(
        &self,
        u: &Var,
        state: Option<&Mamba2State>,
    ) -> Result<(Var, Mamba2State)> {
        let c = &self.config;
        let (di, n, w, h, p, g) = (
            c.d_inner(),
            c.d_state,
            c.d_conv,
            c.heads(),
            c.headdim,
            c.ngroups,
        );
        let cd = c.conv_dim();
        let [b, l, dm] = *u.shape() else {
            return Err(self.shape_error(u));
        };
        if dm != c.d_model || b == 0 || l == 0 {
            return Err(self.shape_error(u));
        }
        if let Some(s) = state {
            for (what, v, want) in [
                ("conv state", &s.conv, vec![b, cd, w]),
                ("ssm state", &s.ssm, vec![b, h, p, n]),
            ] {
                if v.shape() != want {
                    return Err(Error::ShapeMismatch {
                        op: "Mamba2::forward",
                        expected: format!("{what} {want:?}"),
                        got: v.shape().to_vec(),
                    });
                }
            }
        }
        let zxbcdt = self.in_proj.forward(u)?;
        let z = F::slice(&zxbcdt, 2, 0, di)?;
        let xbc = F::slice(&zxbcdt, 2, di, cd)?;
        let dt = F::slice(&zxbcdt, 2, di + cd, h)?;
        let (conv, conv_next) = conv_silu_with_state(
            &xbc,
            &self.conv_weight,
            self.conv_bias.as_ref(),
            state.map(|s| &s.conv),
        )?;
        let x = F::reshape(&F::slice(&conv, 2, 0, di)?, &[b, l, h, p])?;
        let heads_of = |start: usize| -> Result<Var> {
            // (B, L, G, N) → (B, L, H, N): head j reads group j / (H / G).
            let m = F::reshape(&F::slice(&conv, 2, start, g * n)?, &[b * l * g, 1, n])?;
            let copies: Vec<&Var> = (0..h / g).map(|_| &m).collect();
            F::reshape(&F::concat(&copies, 1)?, &[b, l, h, n])
        };
        let bm = heads_of(di)?;
        let cm = heads_of(di + g * n)?;
        let delta = F::activation(&F::add(&dt, &self.dt_bias)?, Activation::Softplus)?;
        let a = F::scale(&F::activation(&self.a_log, Activation::Exp)?, -1.0)?;
        let log_decay = F::mul(&delta, &a)?;
        let v = F::mul_at(&x, &delta, 0)?;
        let h0 = state.map(|s| F::transpose(&s.ssm)).transpose()?;
        let vars = LinearAttentionVars {
            q: &cm,
            k: &bm,
            v: &v,
            decay: VarDecay::Scalar(&log_decay),
            h0: h0.as_ref(),
        };
        let engine = ChunkedAttention {
            chunk: c.chunk,
            layout: LaLayout::Bthd,
        };
        let (y, last) = F::linear_attention(&vars, engine)?;
        let y = F::add(&y, &F::mul_at(&x, &self.d, 2)?)?;
        let y = F::reshape(&y, &[b, l, di])?;
        let gated = F::mul(&y, &F::activation(&z, Activation::Silu)?)?;
        let normed = F::rms_norm(&F::reshape(&gated, &[b, l, g, di / g])?, None, c.norm_eps)?;
        let normed = F::mul(&F::reshape(&normed, &[b, l, di])?, &self.norm_weight)?;
        let out = self.out_proj.forward(&normed)?;
        Ok((
            out,
            Mamba2State {
                conv: conv_next,
                ssm: F::transpose(&last)?,
            },
        ))
    }

    /// One token `u` (B, d_model) from `state`: the output (B, d_model) and
    /// the next state. Equal to the parallel form.
    pub fn step(&self, u: &Var, state: Option<&Mamba2State>) -> Result<(Var, Mamba2State)> {
        let [b, dm] = *u.shape() else {
            return Err(self.shape_error(u));
        };
        let (y, s) = self.forward_with_state(&F::reshape(u, &[b, 1, dm])?, state)?;
        Ok((F::reshape(&y, &[b, dm])?, s))
    }

    fn shape_error(&self, u: &Var) -> Error {
        Error::ShapeMismatch {
            op: "Mamba2::forward",
            expected: format!(
                "(B, L, {}) with B, L > 0 (or (B, {0}) for step)",
                self.config.d_model
            ),
            got: u.shape().to_vec(),
        }
    }
}

impl Module for Mamba2 {
    /// mamba_ssm's names, in its order.
    fn named_parameters(&self) -> Vec<(String, Var)> {
        let mut v = vec![("dt_bias".to_string(), self.dt_bias.clone())];
        v.push(("A_log".into(), self.a_log.clone()));
        v.push(("D".into(), self.d.clone()));
        v.extend(prefixed("in_proj", &self.in_proj));
        v.push(("conv1d.weight".into(), self.conv_weight.clone()));
        v.extend(
            self.conv_bias
                .clone()
                .map(|b| ("conv1d.bias".to_string(), b)),
        );
        v.push(("norm.weight".into(), self.norm_weight.clone()));
        v.extend(prefixed("out_proj", &self.out_proj));
        v
    }
}

impl Layer for Mamba2 {
    /// The sequence from a zero state.
    fn forward(&self, u: &Var) -> Result<Var> {
        Ok(self.forward_with_state(u, None)?.0)
    }
}
