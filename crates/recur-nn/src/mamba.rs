//! Mamba (Gu & Dao 2023) exactly as `mamba_ssm.modules.mamba_simple.Mamba`:
//!
//! ```text
//! (x, z) = in_proj(h)                         (no bias)
//! x = silu(causal depthwise conv1d(x) + conv bias)        width d_conv
//! (dt_low, B, C) = x_proj(x)                  (no bias)
//! δ = dt_proj.weight · dt_low;  y = selective_scan(x, δ, −exp(A_log), B, C, D,
//!     z, δ_bias = dt_proj.bias, softplus)
//! out = out_proj(y)                           (no bias)
//! ```
//!
//! with mamba_ssm's parameter names (`in_proj.weight`, `conv1d.weight`
//! (D, 1, W), `conv1d.bias`, `x_proj.weight`, `dt_proj.weight`,
//! `dt_proj.bias`, `A_log`, `D`, `out_proj.weight`) and initialisation.
//! Sequences are batch-first (B, L, d_model). The whole sequence runs in
//! parallel (the selective scan over time chunks); [`Mamba::step`] runs one
//! token from a [`MambaState`] and equals the parallel form.

use recur_gpu::ops::selective_scan::{SelectiveScan, SsLayout};
use recur_gpu::ops::Activation;
use recur_gpu::{Device, Error, Result, Rng, Tensor};

use crate::autograd::Var;
use crate::functional::{self as F, SelectiveScanVars};
use crate::linear::{Linear, LinearConfig};
use crate::module::{prefixed, Layer, Module};

/// `mamba_ssm`'s `Mamba(d_model, ...)` arguments.
#[derive(Clone, Copy, Debug)]
pub struct MambaConfig {
    /// Model width.
    pub d_model: usize,
    /// State size N per channel (16).
    pub d_state: usize,
    /// Width of the causal convolution (4).
    pub d_conv: usize,
    /// d_inner = expand · d_model (2).
    pub expand: usize,
    /// Rank of the δ projection; `None` is ⌈d_model / 16⌉.
    pub dt_rank: Option<usize>,
    /// softplus(dt_proj.bias) starts log-uniform in [dt_min, dt_max]
    /// (0.001, 0.1), at least `dt_init_floor` (1e-4).
    pub dt_min: f32,
    /// See `dt_min`.
    pub dt_max: f32,
    /// See `dt_min`.
    pub dt_init_floor: f32,
    /// dt_proj.weight starts uniform in ±dt_scale / √dt_rank (1).
    pub dt_scale: f32,
    /// The convolution has a bias (true).
    pub conv_bias: bool,
}

impl MambaConfig {
    /// mamba_ssm's defaults for `d_model`.
    pub fn new(d_model: usize) -> Self {
        Self {
            d_model,
            d_state: 16,
            d_conv: 4,
            expand: 2,
            dt_rank: None,
            dt_min: 0.001,
            dt_max: 0.1,
            dt_init_floor: 1e-4,
            dt_scale: 1.0,
            conv_bias: true,
        }
    }

    /// d_inner.
    pub fn d_inner(&self) -> usize {
        self.expand * self.d_model
    }

    /// The δ projection's rank.
    pub fn rank(&self) -> usize {
        self.dt_rank.unwrap_or(self.d_model.div_ceil(16))
    }

    /// Builds the layer with mamba_ssm's initialisation.
    pub fn init(&self, device: &Device, rng: &mut Rng) -> Result<Mamba> {
        let (di, n, w, r) = (self.d_inner(), self.d_state, self.d_conv, self.rank());
        if self.d_model == 0 || n == 0 || w == 0 || self.expand == 0 || r == 0 {
            return Err(Error::InvalidArgument {
                op: "MambaConfig::init",
                what: format!("sizes must be positive: {self:?}"),
            });
        }
        let no_bias = |i, o| LinearConfig {
            bias: false,
            ..LinearConfig::new(i, o)
        };
        let in_proj = no_bias(self.d_model, 2 * di).init(device, rng)?;
        // nn.Conv1d's default: uniform in ±1/√(fan_in), fan_in = W (depthwise).
        let k = 1.0 / (w as f32).sqrt();
        let conv_weight = Tensor::rand(device, &[di, 1, w], -k, k, rng)?;
        let conv_bias = if self.conv_bias {
            Some(Var::param(Tensor::rand(device, &[di], -k, k, rng)?))
        } else {
            None
        };
        let x_proj = no_bias(di, r + 2 * n).init(device, rng)?;
        let std = self.dt_scale / (r as f32).sqrt();
        let dt_weight = Tensor::rand(device, &[di, r], -std, std, rng)?;
        // softplus(bias) = dt, log-uniform in [dt_min, dt_max].
        let (lo, hi) = (self.dt_min.ln(), self.dt_max.ln());
        let bias: Vec<f32> = (0..di)
            .map(|_| {
                let dt = (lo + rng.next_f32() * (hi - lo))
                    .exp()
                    .max(self.dt_init_floor);
                dt + (-(-dt).exp_m1()).ln()
            })
            .collect();
        let dt_proj = Linear {
            weight: Var::param(dt_weight),
            bias: Some(Var::param(Tensor::from_slice(device, &bias, &[di])?)),
        };
        let a_log: Vec<f32> = (0..di)
            .flat_map(|_| (1..=n).map(|v| (v as f32).ln()))
            .collect();
        Ok(Mamba {
            config: *self,
            in_proj,
            conv_weight: Var::param(conv_weight),
            conv_bias,
            x_proj,
            dt_proj,
            a_log: Var::param(Tensor::from_slice(device, &a_log, &[di, n])?),
            d: Var::param(Tensor::full(device, &[di], 1.0)?),
            out_proj: no_bias(di, self.d_model).init(device, rng)?,
        })
    }
}

/// One Mamba layer's state between calls, in mamba_ssm's and Hugging Face's
/// inference-cache layout: the last d_conv inputs of the convolution and
/// the selective scan's state. A cache from either loads as it is.
#[derive(Clone, Debug)]
pub struct MambaState {
    /// (B, d_inner, d_conv): the convolution's last d_conv inputs, oldest
    /// first, zeros before the sequence start (the oldest one is not read
    /// again: the next output needs only d_conv − 1 of them).
    pub conv: Var,
    /// (B, d_inner, d_state).
    pub ssm: Var,
}

/// A Mamba mixer layer. Parameters are public so that they can be set or
/// inspected under mamba_ssm's names (see [`Module::named_parameters`]).
#[derive(Clone, Debug)]
pub struct Mamba {
    config: MambaConfig,
    /// d_model → 2·d_inner (x, z), no bias.
    pub in_proj: Linear,
    /// (d_inner, 1, d_conv), PyTorch's Conv1d layout.
    pub conv_weight: Var,
    /// (d_inner).
    pub conv_bias: Option<Var>,
    /// d_inner → dt_rank + 2·d_state, no bias.
    pub x_proj: Linear,
    /// dt_rank → d_inner; its bias is the scan's δ_bias.
    pub dt_proj: Linear,
    /// (d_inner, d_state): A = −exp(A_log).
    pub a_log: Var,
    /// (d_inner): the skip term.
    pub d: Var,
    /// d_inner → d_model, no bias.
    pub out_proj: Linear,
}

impl Mamba {
    /// The configuration.
    pub fn config(&self) -> &MambaConfig {
        &self.config
    }

    /// A zero state for a batch of `b`.
    pub fn zero_state(&self, device: &Device, b: usize) -> Result<MambaState> {
        let c = &self.config;
        Ok(MambaState {
            conv: Var::new(Tensor::zeros(device, &[b, c.d_inner(), c.d_conv])?),
            ssm: Var::new(Tensor::zeros(device, &[b, c.d_inner(), c.d_state])?),
        })
    }

    /// The whole sequence `x` (B, L, d_model) in parallel, from `state`
    /// (zeros when absent): the output (B, L, d_model) and the state after
    /// the last step.
    pub fn forward_with_state(
        &self,
        x: &Var,
        state: Option<&MambaState>,
    ) -> Result<(Var, MambaState)> {
        let c = &self.config;
        let (di, n, w, r) = (c.d_inner(), c.d_state, c.d_conv, c.rank());
        let [b, l, dm] = *x.shape() else {
            return Err(self.shape_error(x));
        };
        if dm != c.d_model || b == 0 || l == 0 {
            return Err(self.shape_error(x));
        }
        if let Some(s) = state {
            for (what, v, want) in [
                ("conv state", &s.conv, [b, di, w]),
                ("ssm state", &s.ssm, [b, di, n]),
            ] {
                if v.shape() != want {
                    return Err(Error::ShapeMismatch {
                        op: "Mamba::forward",
                        expected: format!("{what} {want:?}"),
                        got: v.shape().to_vec(),
                    });
                }
            }
        }
        let xz = self.in_proj.forward(x)?;
        let xi = F::slice(&xz, 2, 0, di)?;
        let z = F::slice(&xz, 2, di, di)?;
        let (xc, conv) = conv_silu_with_state(
            &xi,
            &self.conv_weight,
            self.conv_bias.as_ref(),
            state.map(|s| &s.conv),
        )?;
        let xdbl = self.x_proj.forward(&xc)?;
        let dt = F::linear(&F::slice(&xdbl, 2, 0, r)?, &self.dt_proj.weight, None)?;
        let bm = F::transpose(&F::slice(&xdbl, 2, r, n)?)?;
        let cm = F::transpose(&F::slice(&xdbl, 2, r + n, n)?)?;
        let a = F::scale(&F::activation(&self.a_log, Activation::Exp)?, -1.0)?;
        let scan = SelectiveScan {
            delta_softplus: true,
            layout: SsLayout::Bld,
            ..SelectiveScan::default()
        };
        let vars = SelectiveScanVars {
            u: &xc,
            delta: &dt,
            a: &a,
            b: &bm,
            c: &cm,
            d: Some(&self.d),
            z: Some(&z),
            delta_bias: self.dt_proj.bias.as_ref(),
            h0: state.map(|s| &s.ssm),
        };
        let (y, last) = F::selective_scan(&vars, scan)?;
        let out = self.out_proj.forward(&y)?;
        Ok((out, MambaState { conv, ssm: last }))
    }

    /// One token `x` (B, d_model) from `state` (zeros when absent): the
    /// output (B, d_model) and the next state. Equal to the parallel form.
    pub fn step(&self, x: &Var, state: Option<&MambaState>) -> Result<(Var, MambaState)> {
        let [b, dm] = *x.shape() else {
            return Err(self.shape_error(x));
        };
        let (y, s) = self.forward_with_state(&F::reshape(x, &[b, 1, dm])?, state)?;
        Ok((F::reshape(&y, &[b, dm])?, s))
    }

    fn shape_error(&self, x: &Var) -> Error {
        Error::ShapeMismatch {
            op: "Mamba::forward",
            expected: format!(
                "(B, L, {}) with B, L > 0 (or (B, {0}) for step)",
                self.config.d_model
            ),
            got: x.shape().to_vec(),
        }
    }
}

/// The causal depthwise convolution of `x` (B, L, C) with `weight`
/// (C, 1, W) and `bias`, continuing `state` (B, C, W: the last W inputs,
/// mamba_ssm's and Hugging Face's cache layout; zeros when absent), then
/// silu: the output (B, L, C) and the next state (B, C, W).
pub(crate) fn conv_silu_with_state(
    x: &Var,
    weight: &Var,
    bias: Option<&Var>,
    state: Option<&Var>,
) -> Result<(Var, Var)> {
    let [b, l, c] = *x.shape() else {
        return Err(Error::ShapeMismatch {
            op: "causal_conv1d",
            expected: "(B, L, C)".into(),
            got: x.shape().to_vec(),
        });
    };
    let w = weight.shape().last().copied().unwrap_or(1);
    let weight = F::reshape(weight, &[c, w])?;
    // The kernel's state is the last W−1 inputs, channels last.
    let prev = state.map(F::transpose).transpose()?;
    let conv_state = match &prev {
        Some(p) if w > 1 => Some(F::slice(p, 1, 1, w - 1)?),
        _ => None,
    };
    let y = F::causal_conv1d(x, &weight, bias, conv_state.as_ref())?;
    let y = F::activation(&y, Activation::Silu)?;
    // The last W inputs of the convolution, after the old ones.
    let next = if l >= w {
        F::slice(x, 1, l - w, w)?
    } else {
        let prev = match prev {
            Some(p) => p,
            None => {
                let dev = x.value().device("causal_conv1d")?;
                Var::new(Tensor::zeros(&dev, &[b, w, c])?)
            }
        };
        F::concat(&[&F::slice(&prev, 1, l, w - l)?, x], 1)?
    };
    Ok((y, F::transpose(&next)?))
}

impl Module for Mamba {
    /// mamba_ssm's names, in its order.
    fn named_parameters(&self) -> Vec<(String, Var)> {
        let mut v = prefixed("in_proj", &self.in_proj);
        v.push(("conv1d.weight".into(), self.conv_weight.clone()));
        v.extend(
            self.conv_bias
                .clone()
                .map(|b| ("conv1d.bias".to_string(), b)),
        );
        v.extend(prefixed("x_proj", &self.x_proj));
        v.extend(prefixed("dt_proj", &self.dt_proj));
        v.push(("A_log".into(), self.a_log.clone()));
        v.push(("D".into(), self.d.clone()));
        v.extend(prefixed("out_proj", &self.out_proj));
        v
    }
}

impl Layer for Mamba {
    /// The sequence from a zero state.
    fn forward(&self, x: &Var) -> Result<Var> {
        Ok(self.forward_with_state(x, None)?.0)
    }
}
