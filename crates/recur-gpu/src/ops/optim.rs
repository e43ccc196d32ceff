//! Fused optimizer updates and gradient clipping (`shaders/optim.wgsl`):
//! one dispatch per parameter tensor, in place, no readback.

use super::{all_f32, device_of, reduce, u32_of};
use crate::bindings::optim::{self as k, Params};
use crate::device::Device;
use crate::error::{check_shape, Error, Result};
use crate::kernel::KernelKey;
use crate::record::groups_for;
use crate::tensor::{DType, Tensor};

const FLAG_DECOUPLED: u32 = 1;
const FLAG_NESTEROV: u32 = 2;
const FLAG_FIRST: u32 = 4;

/// Hyper-parameters of one Adam/AdamW step (`torch.optim.Adam`/`AdamW`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamStep {
    /// Learning rate for this step.
    pub lr: f32,
    /// β₁, β₂.
    pub betas: (f32, f32),
    /// ε.
    pub eps: f32,
    /// Weight decay: L2 (Adam) or decoupled (AdamW).
    pub weight_decay: f32,
    /// AdamW's decoupled weight decay (Loshchilov & Hutter 2019).
    pub decoupled: bool,
    /// Step number, from 1 (for the bias corrections).
    pub t: u64,
}

/// Hyper-parameters of one SGD step (`torch.optim.SGD`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SgdStep {
    /// Learning rate for this step.
    pub lr: f32,
    /// Momentum μ (0 for plain SGD).
    pub momentum: f32,
    /// Dampening of the momentum update.
    pub dampening: f32,
    /// Nesterov momentum (Sutskever et al. 2013).
    pub nesterov: bool,
    /// L2 weight decay.
    pub weight_decay: f32,
    /// First step: the momentum buffer starts as the gradient.
    pub first: bool,
}

fn check(op: &'static str, param: &Tensor, others: &[&Tensor], scale: &Tensor) -> Result<Device> {
    let mut all = vec![param, scale];
    all.extend_from_slice(others);
    let dev = device_of(op, &all)?;
    all_f32(op, &all)?;
    for t in others {
        check_shape(op, param.shape(), t.shape())?;
    }
    check_shape(op, &[1], scale.shape())?;
    Ok(dev)
}

fn groups(dev: &Device, n: usize) -> [u32; 3] {
    [
        groups_for(
            n,
            256,
            dev.info().limits.max_compute_workgroups_per_dimension,
        ),
        1,
        1,
    ]
}

/// One Adam/AdamW update of `param` in place from `grad · scale[0]`, with
/// moment buffers `m` and `v` (zeros before the first step).
pub fn adam_step(
    param: &Tensor,
    grad: &Tensor,
    m: &Tensor,
    v: &Tensor,
    scale: &Tensor,
    s: &AdamStep,
) -> Result<()> {
    let op = "adam_step";
    let dev = check(op, param, &[grad, m, v], scale)?;
    if s.t == 0 {
        return Err(Error::InvalidArgument {
            op,
            what: "step numbers start at 1".into(),
        });
    }
    if param.numel() == 0 {
        return Ok(());
    }
    let p = Params {
        n: u32_of(op, "elements", param.numel())?,
        flags: if s.decoupled { FLAG_DECOUPLED } else { 0 },
        lr: s.lr,
        beta1: s.betas.0,
        beta2: s.betas.1,
        eps: s.eps,
        weight_decay: s.weight_decay,
        bc1: 1.0 - s.betas.0.powf(s.t as f32),
        bc2: 1.0 - s.betas.1.powf(s.t as f32),
        ..Params::default()
    };
    dev.launch(
        &KernelKey::of::<k::AdamStep>(),
        &p,
        &k::AdamStep {
            param: param.into(),
            grad: grad.into(),
            m: m.into(),
            v: v.into(),
            scale: scale.into(),
        },
        groups(&dev, param.numel()),
    )
}

/// One SGD update of `param` in place from `grad · scale[0]`, with momentum
/// buffer `buf`.
pub fn sgd_step(
    param: &Tensor,
    grad: &Tensor,
    buf: &Tensor,
    scale: &Tensor,
    s: &SgdStep,
) -> Result<()> {
    let op = "sgd_step";
    let dev = check(op, param, &[grad, buf], scale)?;
    if s.nesterov && (s.momentum <= 0.0 || s.dampening != 0.0) {
        return Err(Error::InvalidArgument {
            op,
            what: "Nesterov momentum requires momentum > 0 and zero dampening".into(),
        });
    }
    if param.numel() == 0 {
        return Ok(());
    }
    let mut flags = 0;
    if s.nesterov {
        flags |= FLAG_NESTEROV;
    }
    if s.first {
        flags |= FLAG_FIRST;
    }
    let p = Params {
        n: u32_of(op, "elements", param.numel())?,
        flags,
        lr: s.lr,
        beta1: s.momentum,
        beta2: s.dampening,
        weight_decay: s.weight_decay,
        ..Params::default()
    };
    dev.launch(
        &KernelKey::of::<k::SgdStep>(),
        &p,
        &k::SgdStep {
            param: param.into(),
            grad: grad.into(),
            buf: buf.into(),
            scale: scale.into(),
        },
        groups(&dev, param.numel()),
    )
}

/// The global gradient norm and the factor that clips it.
#[derive(Clone, Debug)]
pub struct ClipNorm {
    /// (1): the L2 norm over all gradients before clipping.
    pub norm: Tensor,
    /// (1): min(1, max_norm / (norm + 1e-6)), to pass to the optimizer steps.
    pub scale: Tensor,
}

/// Clipping by global L2 norm (Pascanu et al. 2013), computed on the GPU:
/// returns the norm and the scale the optimizer applies; gradients are not
/// rewritten, and nothing is read back.
pub fn clip_grad_norm(grads: &[&Tensor], max_norm: f32) -> Result<ClipNorm> {
    let op = "clip_grad_norm";
    if max_norm.is_nan() || max_norm <= 0.0 {
        return Err(Error::InvalidArgument {
            op,
            what: format!("max_norm must be positive, got {max_norm}"),
        });
    }
    let norm = reduce::global_l2_norm(grads)?;
    let dev = norm.device(op)?;
    let scale = dev.alloc(op, &[1], DType::F32)?;
    let p = Params {
        value: max_norm,
        ..Params::default()
    };
    dev.launch(
        &KernelKey::of::<k::ClipScale>(),
        &p,
        &k::ClipScale {
            norm: (&norm).into(),
            scale: (&scale).into(),
        },
        [1, 1, 1],
    )?;
    Ok(ClipNorm { norm, scale })
}

/// Clamps every element of `grad` to [-value, value], in place.
pub fn clip_grad_value(grad: &Tensor, value: f32) -> Result<()> {
    let op = "clip_grad_value";
    let dev = device_of(op, &[grad])?;
    all_f32(op, &[grad])?;
    if value.is_nan() || value < 0.0 {
        return Err(Error::InvalidArgument {
            op,
            what: format!("clip value must be non-negative, got {value}"),
        });
    }
    if grad.numel() == 0 {
        return Ok(());
    }
    let p = Params {
        n: u32_of(op, "elements", grad.numel())?,
        value,
        ..Params::default()
    };
    dev.launch(
        &KernelKey::of::<k::ClipValue>(),
        &p,
        &k::ClipValue { grad: grad.into() },
        groups(&dev, grad.numel()),
    )
}

pub(crate) fn variants() -> Vec<KernelKey> {
    ["adam_step", "sgd_step", "clip_scale", "clip_value"]
        .into_iter()
        .map(|e| KernelKey::new("optim", e))
        .collect()
}
