//! Causal depthwise 1-D convolution over time (`shaders/conv1d.wgsl`):
//! Mamba's short convolution, `nn.Conv1d(D, D, W, groups=D, padding=W−1)`
//! keeping the first L outputs, on channels-last (B, L, D) sequences, with
//! an optional state of the W−1 inputs before the sequence (for streaming
//! and for carrying the context across truncated-BPTT windows).

use super::{all_f32, device_of, layout, reduce, u32_of};
use crate::bindings::conv1d::{self as k, Params};
use crate::error::{check_shape, Error, Result};
use crate::kernel::KernelKey;
use crate::record::groups_for;
use crate::tensor::{DType, Tensor};

/// Time steps per partial weight-gradient sum (the shader's CH).
const CHUNK: usize = 64;

/// Gradients of [`causal_conv1d`].
#[derive(Clone, Debug)]
pub struct Conv1dGrads {
    /// (B, L, D)
    pub dx: Tensor,
    /// (D, W)
    pub dweight: Tensor,
    /// (D), when the convolution has a bias.
    pub dbias: Option<Tensor>,
    /// (B, W−1, D), when it ran from a state.
    pub dstate: Option<Tensor>,
}

struct Dims {
    batch: usize,
    len: usize,
    dim: usize,
    width: usize,
}

fn dims(
    op: &'static str,
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    state: Option<&Tensor>,
) -> Result<Dims> {
    let mut all = vec![x, weight];
    all.extend(bias.into_iter().chain(state));
    all_f32(op, &all)?;
    let [batch, len, dim] = *x.shape() else {
        return Err(Error::ShapeMismatch {
            op,
            expected: "x of shape (B, L, D)".into(),
            got: x.shape().to_vec(),
        });
    };
    let [wd, width] = *weight.shape() else {
        return Err(Error::ShapeMismatch {
            op,
            expected: "weight of shape (D, W)".into(),
            got: weight.shape().to_vec(),
        });
    };
    if batch == 0 || len == 0 || dim == 0 || width == 0 || wd != dim {
        return Err(Error::ShapeMismatch {
            op,
            expected: format!("non-empty x (B, L, D) and weight ({dim}, W ≥ 1)"),
            got: weight.shape().to_vec(),
        });
    }
    if let Some(b) = bias {
        check_shape(op, &[dim], b.shape())?;
    }
    if let Some(s) = state {
        check_shape(op, &[batch, width - 1, dim], s.shape())?;
    }
    Ok(Dims {
        batch,
        len,
        dim,
        width,
    })
}

fn params(op: &'static str, s: &Dims, bias: bool, state: bool) -> Result<Params> {
    Ok(Params {
        batch: u32_of(op, "batch", s.batch)?,
        len: u32_of(op, "length", s.len)?,
        dim: u32_of(op, "channels", s.dim)?,
        width: u32_of(op, "width", s.width)?,
        has_state: state as u32,
        has_bias: bias as u32,
        chunks: u32_of(op, "chunks", s.len.div_ceil(CHUNK))?,
        ..Params::default()
    })
}

/// `y` (B, L, D) for `x` (B, L, D), `weight` (D, W) (PyTorch's (D, 1, W)
/// reshaped), optional `bias` (D) and `state` (B, W−1, D), the inputs before
/// `x` (zeros when absent). One dispatch.
pub fn causal_conv1d(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    state: Option<&Tensor>,
) -> Result<Tensor> {
    let op = "causal_conv1d";
    let s = dims(op, x, weight, bias, state)?;
    // A width-1 convolution has no context to carry.
    let state = state.filter(|_| s.width > 1);
    let dev = device_of(op, &[x, weight])?;
    let p = params(op, &s, bias.is_some(), state.is_some())?;
    let y = dev.alloc(op, x.shape(), DType::F32)?;
    let lim = dev.info().limits.max_compute_workgroups_per_dimension;
    let bind = k::Conv1dCausal {
        w: weight.into(),
        state: state.unwrap_or(weight).into(),
        x: x.into(),
        bias: bias.unwrap_or(weight).into(),
        y: (&y).into(),
    };
    let groups = [groups_for(y.numel(), 256, lim), 1, 1];
    dev.launch(&KernelKey::of::<k::Conv1dCausal>(), &p, &bind, groups)?;
    Ok(y)
}

/// The W−1 inputs that end `x` after `state` (B, W−1, D): the state of a
/// next call (zeros stand in for an absent state).
pub fn causal_conv1d_state(x: &Tensor, state: Option<&Tensor>, width: usize) -> Result<Tensor> {
    let op = "causal_conv1d_state";
    let [b, len, d] = *x.shape() else {
        return Err(Error::ShapeMismatch {
            op,
            expected: "x of shape (B, L, D)".into(),
            got: x.shape().to_vec(),
        });
    };
    let keep = width.saturating_sub(1);
    if len >= keep {
        return layout::slice(x, 1, len - keep, keep);
    }
    let prev = match state {
        Some(s) => s.clone(),
        None => Tensor::zeros(&x.device(op)?, &[b, keep, d])?,
    };
    layout::concat(&[&layout::slice(&prev, 1, len, keep - len)?, x], 1)
}

/// Gradients of [`causal_conv1d`] for upstream `dy` (B, L, D). Three
/// dispatches and a sum of per-chunk weight-gradient partials.
pub fn causal_conv1d_backward(
    x: &Tensor,
    weight: &Tensor,
    has_bias: bool,
    state: Option<&Tensor>,
    dy: &Tensor,
) -> Result<Conv1dGrads> {
    let op = "causal_conv1d_backward";
    let s = dims(op, x, weight, None, state)?;
    let empty_state = state.filter(|_| s.width == 1).cloned();
    let state = state.filter(|_| s.width > 1);
    let dev = device_of(op, &[x, weight, dy])?;
    all_f32(op, &[dy])?;
    check_shape(op, x.shape(), dy.shape())?;
    let p = params(op, &s, has_bias, state.is_some())?;
    let lim = dev.info().limits.max_compute_workgroups_per_dimension;
    let dx = dev.alloc(op, x.shape(), DType::F32)?;
    let dstate = match state {
        Some(st) => dev.alloc(op, st.shape(), DType::F32)?,
        None => dev.alloc(op, &[1], DType::F32)?,
    };
    let bind = k::Conv1dCausalBackward {
        w: weight.into(),
        state: state.unwrap_or(weight).into(),
        dy: dy.into(),
        dx: (&dx).into(),
        dstate: (&dstate).into(),
    };
    let span = s.batch * (s.len + s.width - 1) * s.dim;
    let groups = [groups_for(span, 256, lim), 1, 1];
    dev.launch(
        &KernelKey::of::<k::Conv1dCausalBackward>(),
        &p,
        &bind,
        groups,
    )?;
    let chunks = p.chunks as usize;
    if s.dim.div_ceil(64) > lim as usize || chunks > lim as usize || s.batch > lim as usize {
        return Err(Error::InvalidArgument {
            op,
            what: format!(
                "{} channel blocks, {chunks} time chunks or batch {} exceed {lim} workgroups per dimension",
                s.dim.div_ceil(64),
                s.batch
            ),
        });
    }
    let part = dev.alloc(op, &[s.batch * chunks, s.dim, s.width + 1], DType::F32)?;
    let bind = k::Conv1dCausalWgrad {
        w: weight.into(),
        state: state.unwrap_or(weight).into(),
        x: x.into(),
        dy: dy.into(),
        part: (&part).into(),
    };
    let groups = [s.dim.div_ceil(64) as u32, chunks as u32, s.batch as u32];
    dev.launch(&KernelKey::of::<k::Conv1dCausalWgrad>(), &p, &bind, groups)?;
    let w1 = s.width + 1;
    let sums = reduce::sum(&part.reshape(&[s.batch * chunks, s.dim * w1])?, 0)?;
    let sums = sums.reshape(&[s.dim, w1])?;
    let dbias = if has_bias {
        Some(layout::slice(&sums, 1, s.width, 1)?.reshape(&[s.dim])?)
    } else {
        None
    };
    Ok(Conv1dGrads {
        dx,
        dweight: layout::slice(&sums, 1, 0, s.width)?,
        dbias,
        dstate: empty_state.or(state.map(|_| dstate)),
    })
}

pub(crate) fn variants() -> Vec<KernelKey> {
    vec![
        KernelKey::of::<k::Conv1dCausal>(),
        KernelKey::of::<k::Conv1dCausalBackward>(),
        KernelKey::of::<k::Conv1dCausalWgrad>(),
    ]
}
