//! Optimizers as fused GPU kernels (one dispatch per parameter tensor, no
//! readback), learning-rate schedules, and gradient clipping.
//!
//! The optimizers update parameters in place, so every clone of a parameter
//! tensor sees the new values.

use recur_gpu::ops::optim::{self, AdamStep, SgdStep};
use recur_gpu::{Device, Error, Result, Tensor};

use crate::autograd::Var;

pub use recur_gpu::ops::optim::{clip_grad_norm, clip_grad_value, ClipNorm};

/// The gradients of `params`, all of which must have one.
pub fn grads_of(op: &'static str, params: &[Var]) -> Result<Vec<Tensor>> {
    params
        .iter()
        .enumerate()
        .map(|(i, p)| {
            p.grad().ok_or_else(|| Error::InvalidArgument {
                op,
                what: format!(
                    "parameter {i} {:?} has no gradient (call backward first, or leave it \
                     out of the optimizer)",
                    p.shape()
                ),
            })
        })
        .collect()
}

/// [`clip_grad_norm`] over the gradients of `params`
/// (`torch.nn.utils.clip_grad_norm_`): the pre-clip norm and the scale to
/// pass to an optimizer's step, both on the GPU.
pub fn clip_grad_norm_params(params: &[Var], max_norm: f32) -> Result<ClipNorm> {
    let grads = grads_of("clip_grad_norm_params", params)?;
    clip_grad_norm(&grads.iter().collect::<Vec<_>>(), max_norm)
}

fn values(params: &[Var]) -> Vec<&Tensor> {
    params.iter().map(Var::value).collect()
}

/// Checks counts and shapes before any update, so a bad call changes nothing.
fn check_lists(
    op: &'static str,
    state: &[&[usize]],
    params: &[&Tensor],
    grads: &[&Tensor],
) -> Result<()> {
    if params.len() != state.len() || grads.len() != state.len() {
        return Err(Error::InvalidArgument {
            op,
            what: format!(
                "optimizer built for {} parameters, got {} parameters and {} gradients",
                state.len(),
                params.len(),
                grads.len()
            ),
        });
    }
    for ((p, g), s) in params.iter().zip(grads).zip(state) {
        for got in [p.shape(), g.shape()] {
            if got != *s {
                return Err(Error::ShapeMismatch {
                    op,
                    expected: format!("{s:?}, the shape the optimizer was built for"),
                    got: got.to_vec(),
                });
            }
        }
    }
    Ok(())
}

/// Adam / AdamW hyper-parameters (`torch.optim.Adam` / `AdamW` defaults).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamConfig {
    /// Learning rate (scaled by a schedule through [`Adam::set_lr`]).
    pub lr: f32,
    /// (β₁, β₂), Kingma & Ba (2015).
    pub betas: (f32, f32),
    /// ε added to √v̂.
    pub eps: f32,
    /// Weight decay: L2 in the gradient (Adam) or decoupled (AdamW).
    pub weight_decay: f32,
    /// Decoupled weight decay (AdamW, Loshchilov & Hutter 2019).
    pub decoupled: bool,
}

/// Fails unless `value` is finite and at least 0 (and below 1 for a β),
/// as PyTorch's optimizers check their hyper-parameters.
fn check_hyper(op: &'static str, name: &str, value: f32, below_one: bool) -> Result<()> {
    let ok = value.is_finite() && value >= 0.0 && (!below_one || value < 1.0);
    if ok {
        Ok(())
    } else {
        let range = if below_one { "[0, 1)" } else { "[0, ∞)" };
        Err(Error::InvalidArgument {
            op,
            what: format!("{name} must be finite and in {range}, got {value}"),
        })
    }
}

impl AdamConfig {
    fn check(&self, op: &'static str) -> Result<()> {
        check_hyper(op, "lr", self.lr, false)?;
        check_hyper(op, "beta1", self.betas.0, true)?;
        check_hyper(op, "beta2", self.betas.1, true)?;
        check_hyper(op, "eps", self.eps, false)?;
        check_hyper(op, "weight_decay", self.weight_decay, false)
    }

    /// `torch.optim.Adam(lr=lr)`.
    pub fn adam(lr: f32) -> Self {
        Self {
            lr,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.0,
            decoupled: false,
        }
    }

    /// `torch.optim.AdamW(lr=lr)` (weight decay 0.01).
    pub fn adamw(lr: f32) -> Self {
        Self {
            weight_decay: 0.01,
            decoupled: true,
            ..Self::adam(lr)
        }
    }
}

/// Adam or AdamW with its moment buffers on the GPU.
#[derive(Clone, Debug)]
pub struct Adam {
    config: AdamConfig,
    lr: f32,
    moments: Vec<(Tensor, Tensor)>,
    t: u64,
    one: Tensor,
}

impl Adam {
    /// State for `params` (moments start at zero).
    /// A NaN, infinite or negative learning rate (or β outside [0, 1), or
    /// negative ε or weight decay) is an error.
    pub fn new(device: &Device, config: AdamConfig, params: &[&Tensor]) -> Result<Self> {
        config.check("Adam::new")?;
        let moments = params
            .iter()
            .map(|p| {
                Ok((
                    Tensor::zeros(device, p.shape())?,
                    Tensor::zeros(device, p.shape())?,
                ))
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            config,
            lr: config.lr,
            moments,
            t: 0,
            one: Tensor::full(device, &[1], 1.0)?,
        })
    }

    /// State for the parameters of a module (`Adam(model.parameters())`).
    pub fn for_params(config: AdamConfig, params: &[Var]) -> Result<Self> {
        let dev = first_device("Adam::for_params", params)?;
        Self::new(&dev, config, &values(params))
    }

    /// Sets the learning rate of the next steps (for schedules); a NaN,
    /// infinite or negative rate is an error and leaves the rate unchanged.
    pub fn set_lr(&mut self, lr: f32) -> Result<()> {
        check_hyper("Adam::set_lr", "lr", lr, false)?;
        self.lr = lr;
        Ok(())
    }

    /// Steps taken so far.
    pub fn steps(&self) -> u64 {
        self.t
    }

    /// The moment buffers (m, v) per parameter, for checkpoints.
    pub fn moments(&self) -> &[(Tensor, Tensor)] {
        &self.moments
    }

    /// Restores the state a checkpoint saved: the moments (shaped like the
    /// current ones) and the step count.
    pub fn restore(&mut self, moments: Vec<(Tensor, Tensor)>, steps: u64) -> Result<()> {
        if moments.len() != self.moments.len()
            || moments
                .iter()
                .zip(&self.moments)
                .any(|((m, v), (m0, _))| m.shape() != m0.shape() || v.shape() != m0.shape())
        {
            return Err(Error::Corrupt {
                op: "Adam::restore",
                what: "moments do not match the parameters this optimizer was built for".into(),
            });
        }
        self.moments = moments;
        self.t = steps;
        Ok(())
    }

    /// One update of every parameter from its gradient, multiplied by
    /// `grad_scale[0]` when given (the scale from [`clip_grad_norm`]).
    pub fn step(
        &mut self,
        params: &[&Tensor],
        grads: &[&Tensor],
        grad_scale: Option<&Tensor>,
    ) -> Result<()> {
        let shapes: Vec<&[usize]> = self.moments.iter().map(|(m, _)| m.shape()).collect();
        check_lists("Adam::step", &shapes, params, grads)?;
        self.t += 1;
        let s = AdamStep {
            lr: self.lr,
            betas: self.config.betas,
            eps: self.config.eps,
            weight_decay: self.config.weight_decay,
            decoupled: self.config.decoupled,
            t: self.t,
        };
        let scale = grad_scale.unwrap_or(&self.one);
        for ((p, g), (m, v)) in params.iter().zip(grads).zip(&self.moments) {
            optim::adam_step(p, g, m, v, scale, &s)?;
        }
        Ok(())
    }
}

/// SGD hyper-parameters (`torch.optim.SGD`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SgdConfig {
    /// Learning rate.
    pub lr: f32,
    /// Momentum μ; 0 for plain SGD.
    pub momentum: f32,
    /// Dampening of the momentum update.
    pub dampening: f32,
    /// Nesterov momentum (Sutskever et al. 2013).
    pub nesterov: bool,
    /// L2 weight decay.
    pub weight_decay: f32,
}

impl SgdConfig {
    /// Plain SGD at `lr`.
    pub fn new(lr: f32) -> Self {
        Self {
            lr,
            momentum: 0.0,
            dampening: 0.0,
            nesterov: false,
            weight_decay: 0.0,
        }
    }
}

/// SGD with optional momentum, its buffers on the GPU.
#[derive(Clone, Debug)]
pub struct Sgd {
    config: SgdConfig,
    lr: f32,
    buffers: Vec<Tensor>,
    t: u64,
    one: Tensor,
}

impl Sgd {
    /// State for `params`.
    /// A NaN, infinite or negative learning rate, momentum, dampening or
    /// weight decay is an error, as is Nesterov without momentum.
    pub fn new(device: &Device, config: SgdConfig, params: &[&Tensor]) -> Result<Self> {
        let op = "Sgd::new";
        check_hyper(op, "lr", config.lr, false)?;
        check_hyper(op, "momentum", config.momentum, false)?;
        check_hyper(op, "dampening", config.dampening, false)?;
        check_hyper(op, "weight_decay", config.weight_decay, false)?;
        if config.nesterov && (config.momentum <= 0.0 || config.dampening != 0.0) {
            return Err(Error::InvalidArgument {
                op: "Sgd::new",
                what: "Nesterov momentum requires momentum > 0 and zero dampening".into(),
            });
        }
        let buffers = params
            .iter()
            .map(|p| Tensor::zeros(device, p.shape()))
            .collect::<Result<_>>()?;
        Ok(Self {
            config,
            lr: config.lr,
            buffers,
            t: 0,
            one: Tensor::full(device, &[1], 1.0)?,
        })
    }

    /// State for the parameters of a module.
    pub fn for_params(config: SgdConfig, params: &[Var]) -> Result<Self> {
        let dev = first_device("Sgd::for_params", params)?;
        Self::new(&dev, config, &values(params))
    }

    /// Sets the learning rate of the next steps; see [`Adam::set_lr`].
    pub fn set_lr(&mut self, lr: f32) -> Result<()> {
        check_hyper("Sgd::set_lr", "lr", lr, false)?;
        self.lr = lr;
        Ok(())
    }

    /// One update; see [`Adam::step`].
    pub fn step(
        &mut self,
        params: &[&Tensor],
        grads: &[&Tensor],
        grad_scale: Option<&Tensor>,
    ) -> Result<()> {
        let shapes: Vec<&[usize]> = self.buffers.iter().map(|b| b.shape()).collect();
        check_lists("Sgd::step", &shapes, params, grads)?;
        let s = SgdStep {
            lr: self.lr,
            momentum: self.config.momentum,
            dampening: self.config.dampening,
            nesterov: self.config.nesterov,
            weight_decay: self.config.weight_decay,
            first: self.t == 0,
        };
        self.t += 1;
        let scale = grad_scale.unwrap_or(&self.one);
        for ((p, g), b) in params.iter().zip(grads).zip(&self.buffers) {
            optim::sgd_step(p, g, b, scale, &s)?;
        }
        Ok(())
    }
}

/// What the training loop needs of an optimizer, so that it can be generic.
pub trait Optimizer {
    /// One update of `params` from `grads` (in the order the optimizer was
    /// built for), multiplied by `grad_scale[0]` when given.
    fn step_tensors(
        &mut self,
        params: &[&Tensor],
        grads: &[&Tensor],
        grad_scale: Option<&Tensor>,
    ) -> Result<()>;

    /// Sets the learning rate of the next steps (for schedules); a NaN,
    /// infinite or negative rate is an error.
    fn set_learning_rate(&mut self, lr: f32) -> Result<()>;

    /// One update of every parameter from the gradient `backward` left in
    /// it (`optimizer.step()`); a parameter without one is an error.
    fn step_params(&mut self, params: &[Var], grad_scale: Option<&Tensor>) -> Result<()> {
        let grads = grads_of("Optimizer::step_params", params)?;
        self.step_tensors(
            &values(params),
            &grads.iter().collect::<Vec<_>>(),
            grad_scale,
        )
    }
}

impl Optimizer for Adam {
    fn step_tensors(
        &mut self,
        params: &[&Tensor],
        grads: &[&Tensor],
        grad_scale: Option<&Tensor>,
    ) -> Result<()> {
        self.step(params, grads, grad_scale)
    }

    fn set_learning_rate(&mut self, lr: f32) -> Result<()> {
        self.set_lr(lr)
    }
}

impl Optimizer for Sgd {
    fn step_tensors(
        &mut self,
        params: &[&Tensor],
        grads: &[&Tensor],
        grad_scale: Option<&Tensor>,
    ) -> Result<()> {
        self.step(params, grads, grad_scale)
    }

    fn set_learning_rate(&mut self, lr: f32) -> Result<()> {
        self.set_lr(lr)
    }
}

fn first_device(op: &'static str, params: &[Var]) -> Result<Device> {
    params
        .first()
        .ok_or(Error::InvalidArgument {
            op,
            what: "no parameters".into(),
        })?
        .value()
        .device(op)
}

/// Learning-rate schedules: the factor applied to the base rate at a step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LrSchedule {
    /// Always 1.
    Constant,
    /// Linear from 1/warmup to 1 over `warmup` steps, then 1.
    LinearWarmup {
        /// Warm-up steps.
        warmup: u64,
    },
    /// Linear warm-up, then a cosine decay to `min_factor` at `total` steps
    /// (Loshchilov & Hutter 2017, without restarts).
    Cosine {
        /// Warm-up steps.
        warmup: u64,
        /// Step at which the decay reaches `min_factor`.
        total: u64,
        /// Final factor.
        min_factor: f32,
    },
}

impl LrSchedule {
    /// The factor at `step` (0-based).
    pub fn factor(&self, step: u64) -> f32 {
        let warm = |w: u64| {
            if w > 0 && step < w {
                (step + 1) as f32 / w as f32
            } else {
                1.0
            }
        };
        match *self {
            LrSchedule::Constant => 1.0,
            LrSchedule::LinearWarmup { warmup } => warm(warmup),
            LrSchedule::Cosine {
                warmup,
                total,
                min_factor,
            } => {
                if step < warmup {
                    return warm(warmup);
                }
                let span = total.saturating_sub(warmup).max(1) as f32;
                let progress = ((step - warmup) as f32 / span).min(1.0);
                min_factor
                    + (1.0 - min_factor) * 0.5 * (1.0 + (std::f32::consts::PI * progress).cos())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::LrSchedule;

    #[test]
    fn schedules_warm_up_and_decay() {
        let w = LrSchedule::LinearWarmup { warmup: 4 };
        assert_eq!(
            [w.factor(0), w.factor(1), w.factor(3), w.factor(100)],
            [0.25, 0.5, 1.0, 1.0]
        );
        let c = LrSchedule::Cosine {
            warmup: 2,
            total: 12,
            min_factor: 0.1,
        };
        assert_eq!(c.factor(0), 0.5);
        assert!((c.factor(2) - 1.0).abs() < 1e-6);
        assert!((c.factor(7) - 0.55).abs() < 1e-6);
        assert!((c.factor(12) - 0.1).abs() < 1e-6);
        assert!((c.factor(1000) - 0.1).abs() < 1e-6);
        assert_eq!(LrSchedule::Constant.factor(5), 1.0);
    }
}
