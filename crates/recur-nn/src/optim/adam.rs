//! Adam and AdamW (Kingma & Ba 2015; Loshchilov & Hutter 2019) as one fused
//! kernel dispatch per parameter tensor.

use recur_gpu::ops::optim::{self, AdamStep};
use recur_gpu::{Device, Error, Result, Tensor};

use super::{check_hyper, check_lists, first_device, values, Optimizer};
use crate::autograd::Var;

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
