//! SGD with momentum, dampening, Nesterov and weight decay
//! (`torch.optim.SGD`) as one fused kernel dispatch per parameter tensor.

use recur_gpu::ops::optim::{self, SgdStep};
use recur_gpu::{Device, Error, Result, Tensor};

use super::{check_hyper, check_lists, first_device, values, Optimizer};
use crate::autograd::Var;

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
