//! Optimizers as fused GPU kernels (one dispatch per parameter tensor, no
//! readback), learning-rate schedules, and gradient clipping.
//!
//! The optimizers update parameters in place, so every clone of a parameter
//! tensor sees the new values.

mod adam;
mod schedule;
mod sgd;

use recur_gpu::{Device, Error, Result, Tensor};

use crate::autograd::Var;

pub use adam::{Adam, AdamConfig};
pub use recur_gpu::ops::optim::{clip_grad_norm, clip_grad_value, ClipNorm};
pub use schedule::LrSchedule;
pub use sgd::{Sgd, SgdConfig};

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

pub(crate) fn values(params: &[Var]) -> Vec<&Tensor> {
    params.iter().map(Var::value).collect()
}

/// Checks counts and shapes before any update, so a bad call changes nothing.
pub(crate) fn check_lists(
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

/// Fails unless `value` is finite and at least 0 (and below 1 for a β),
/// as PyTorch's optimizers check their hyper-parameters.
pub(crate) fn check_hyper(op: &'static str, name: &str, value: f32, below_one: bool) -> Result<()> {
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

pub(crate) fn first_device(op: &'static str, params: &[Var]) -> Result<Device> {
    params
        .first()
        .ok_or(Error::InvalidArgument {
            op,
            what: "no parameters".into(),
        })?
        .value()
        .device(op)
}
