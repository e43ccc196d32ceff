//! LayerNorm and RMSNorm over the last axis (`shaders/norm.wgsl`).

use super::{all_f32, device_of, u32_of};
use crate::bindings::norm::{self as k, Params};
use crate::error::{check_shape, Error, Result};
use crate::kernel::KernelKey;
use crate::record::groups_for;
use crate::tensor::{DType, Tensor};

/// Which normalisation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Norm {
    /// (x − mean) / √(var + ε), as `torch.nn.LayerNorm` (biased variance).
    Layer,
    /// x / √(mean(x²) + ε), as `torch.nn.RMSNorm`.
    Rms,
}

impl Norm {
    fn name(self) -> &'static str {
        match self {
            Norm::Layer => "layer_norm",
            Norm::Rms => "rms_norm",
        }
    }
}

/// Forward results: the output and the per-row (mean, rstd) the backward reads.
#[derive(Clone, Debug)]
pub struct NormForward {
    /// Shaped like the input.
    pub y: Tensor,
    /// (R, 2): mean (0 for RMSNorm) and 1/√(var + ε) per row.
    pub stats: Tensor,
}

/// Gradients of a normalisation.
#[derive(Clone, Debug)]
pub struct NormGrads {
    /// Shaped like the input.
    pub dx: Tensor,
    /// (C), when the forward had a weight.
    pub dgamma: Option<Tensor>,
    /// (C), when the forward had a bias.
    pub dbeta: Option<Tensor>,
}

fn check(
    op: &'static str,
    x: &Tensor,
    gamma: Option<&Tensor>,
    beta: Option<&Tensor>,
    eps: f32,
) -> Result<(usize, usize)> {
    all_f32(op, &[x])?;
    let (rows, cols) = match x.shape().split_last() {
        Some((&c, rest)) if c > 0 => (rest.iter().product::<usize>(), c),
        _ => {
            return Err(Error::ShapeMismatch {
                op,
                expected: "at least one dimension, with a non-empty last axis".into(),
                got: x.shape().to_vec(),
            })
        }
    };
    for t in [gamma, beta].into_iter().flatten() {
        all_f32(op, &[t])?;
        check_shape(op, &[cols], t.shape())?;
    }
    if !(eps.is_finite() && eps >= 0.0) {
        return Err(Error::InvalidArgument {
            op,
            what: format!("eps must be finite and >= 0, got {eps}"),
        });
    }
    Ok((rows, cols))
}

/// Normalises `x` (.., C) over its last axis, then scales by `gamma` (C)
/// and shifts by `beta` (C) when given. One dispatch.
pub fn norm(
    kind: Norm,
    x: &Tensor,
    gamma: Option<&Tensor>,
    beta: Option<&Tensor>,
    eps: f32,
) -> Result<NormForward> {
    let op = kind.name();
    let mut all = vec![x];
    all.extend(gamma);
    all.extend(beta);
    let dev = device_of(op, &all)?;
    let (rows, cols) = check(op, x, gamma, beta, eps)?;
    let y = dev.alloc(op, x.shape(), DType::F32)?;
    let stats = dev.alloc(op, &[rows, 2], DType::F32)?;
    if rows == 0 {
        return Ok(NormForward { y, stats });
    }
    let p = Params {
        rows: u32_of(op, "rows", rows)?,
        cols: u32_of(op, "cols", cols)?,
        affine: gamma.is_some() as u32,
        bias: beta.is_some() as u32,
        eps,
        ..Params::default()
    };
    // Absent operands are bound as `x` and never read (the flags say so).
    let (g, b) = (gamma.unwrap_or(x), beta.unwrap_or(x));
    let lim = dev.info().limits.max_compute_workgroups_per_dimension;
    dev.launch(
        &KernelKey::of::<k::NormRows>().flag("RMS", kind == Norm::Rms),
        &p,
        &k::NormRows {
            x: x.into(),
            gamma: g.into(),
            beta: b.into(),
            y: (&y).into(),
            stats: (&stats).into(),
        },
        [groups_for(rows, 1, lim), 1, 1],
    )?;
    Ok(NormForward { y, stats })
}

/// Backward of [`norm`] for upstream `dy`: one dispatch for `dx` (and
/// `dy ⊙ x̂`), then column sums for the weight and bias gradients.
pub fn norm_backward(
    kind: Norm,
    x: &Tensor,
    gamma: Option<&Tensor>,
    has_beta: bool,
    stats: &Tensor,
    dy: &Tensor,
) -> Result<NormGrads> {
    let op = match kind {
        Norm::Layer => "layer_norm_backward",
        Norm::Rms => "rms_norm_backward",
    };
    let mut all = vec![x, stats, dy];
    all.extend(gamma);
    let dev = device_of(op, &all)?;
    let (rows, cols) = check(op, x, gamma, None, 0.0)?;
    all_f32(op, &[stats, dy])?;
    check_shape(op, x.shape(), dy.shape())?;
    check_shape(op, &[rows, 2], stats.shape())?;
    let dx = dev.alloc(op, x.shape(), DType::F32)?;
    let dyxhat = dev.alloc(op, &[rows, cols], DType::F32)?;
    if rows > 0 {
        let p = Params {
            rows: u32_of(op, "rows", rows)?,
            cols: u32_of(op, "cols", cols)?,
            affine: gamma.is_some() as u32,
            ..Params::default()
        };
        let g = gamma.unwrap_or(x);
        let lim = dev.info().limits.max_compute_workgroups_per_dimension;
        dev.launch(
            &KernelKey::of::<k::NormRowsBackward>().flag("RMS", kind == Norm::Rms),
            &p,
            &k::NormRowsBackward {
                x: x.into(),
                gamma: g.into(),
                stats: stats.into(),
                dy: dy.into(),
                dx: (&dx).into(),
                dyxhat: (&dyxhat).into(),
            },
            [groups_for(rows, 1, lim), 1, 1],
        )?;
    }
    let dgamma = match gamma {
        Some(_) => Some(super::reduce::sum(&dyxhat, 0)?),
        None => None,
    };
    let dbeta = if has_beta {
        Some(super::reduce::sum(&dy.reshape(&[rows, cols])?, 0)?)
    } else {
        None
    };
    Ok(NormGrads { dx, dgamma, dbeta })
}

pub(crate) fn variants() -> Vec<KernelKey> {
    let mut v = Vec::new();
    for rms in [false, true] {
        v.push(KernelKey::of::<k::NormRows>().flag("RMS", rms));
        v.push(KernelKey::of::<k::NormRowsBackward>().flag("RMS", rms));
    }
    v
}
