//! Softmax, log-softmax and fused softmax-cross-entropy (`shaders/softmax.wgsl`).

use super::{all_f32, device_of, u32_of};
use crate::bindings::softmax::{self as k, Params};
use crate::error::{check_shape, Error, Result};
use crate::kernel::KernelKey;
use crate::record::groups_for;
use crate::tensor::{DType, Tensor};

fn rows_cols(op: &'static str, x: &Tensor) -> Result<(usize, usize)> {
    match x.shape().split_last() {
        Some((&c, rest)) if c > 0 => Ok((rest.iter().product(), c)),
        _ => Err(Error::ShapeMismatch {
            op,
            expected: "at least one dimension, with a non-empty last axis".into(),
            got: x.shape().to_vec(),
        }),
    }
}

fn softmax_impl(x: &Tensor, log: bool) -> Result<Tensor> {
    let op = if log { "log_softmax" } else { "softmax" };
    let dev = device_of(op, &[x])?;
    all_f32(op, &[x])?;
    let (rows, cols) = rows_cols(op, x)?;
    let y = dev.alloc(op, x.shape(), DType::F32)?;
    if rows == 0 {
        return Ok(y);
    }
    let p = Params {
        rows: u32_of(op, "rows", rows)?,
        cols: u32_of(op, "cols", cols)?,
        ..Params::default()
    };
    let lim = dev.info().limits.max_compute_workgroups_per_dimension;
    dev.launch(
        &KernelKey::of::<k::SoftmaxRows>().flag("LOG", log),
        &p,
        &k::SoftmaxRows {
            x: x.into(),
            y: (&y).into(),
        },
        [groups_for(rows, 1, lim), 1, 1],
    )?;
    Ok(y)
}

/// Softmax over the last axis.
pub fn softmax(x: &Tensor) -> Result<Tensor> {
    softmax_impl(x, false)
}

/// Log-softmax over the last axis.
pub fn log_softmax(x: &Tensor) -> Result<Tensor> {
    softmax_impl(x, true)
}

/// How per-row losses are combined.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum LossReduction {
    /// Mean over the rows that count (PyTorch's default).
    #[default]
    Mean,
    /// Sum over the rows.
    Sum,
}

/// The result of [`cross_entropy`].
#[derive(Debug)]
pub struct CrossEntropy {
    /// One element: the reduced loss.
    pub loss: Tensor,
    /// d loss / d logits, shaped like the logits.
    pub grad: Tensor,
}

/// Fused softmax + negative log-likelihood over logits (R, C) (any leading
/// shape) and u32 targets (R); targets equal to `ignore_index` do not count.
/// A target ≥ C (other than `ignore_index`) does not count either, and the
/// next readback or sync fails with [`crate::Error::IndexOutOfRange`] naming
/// it (PyTorch raises; checked on the device, so no readback here).
/// Four dispatches, no readback.
pub fn cross_entropy(
    logits: &Tensor,
    targets: &Tensor,
    ignore_index: Option<u32>,
    reduction: LossReduction,
) -> Result<CrossEntropy> {
    let op = "cross_entropy";
    let dev = device_of(op, &[logits, targets])?;
    all_f32(op, &[logits])?;
    targets.expect_dtype(op, DType::U32)?;
    let (rows, cols) = rows_cols(op, logits)?;
    check_shape(
        op,
        &logits.shape()[..logits.shape().len() - 1],
        targets.shape(),
    )?;
    if rows == 0 {
        return Err(Error::ShapeMismatch {
            op,
            expected: "at least one row".into(),
            got: logits.shape().to_vec(),
        });
    }
    let p = Params {
        rows: u32_of(op, "rows", rows)?,
        cols: u32_of(op, "cols", cols)?,
        ignore_index: ignore_index.unwrap_or(u32::MAX),
        mean: (reduction == LossReduction::Mean) as u32,
    };
    let grad = dev.alloc(op, logits.shape(), DType::F32)?;
    let row_loss = dev.alloc(op, &[rows, 2], DType::F32)?;
    let out = dev.alloc(op, &[2], DType::F32)?;
    let lim = dev.info().limits.max_compute_workgroups_per_dimension;
    dev.launch(
        &KernelKey::of::<k::CrossEntropyRows>(),
        &p,
        &k::CrossEntropyRows {
            x: logits.into(),
            targets: targets.into(),
            grad: (&grad).into(),
            row_loss: (&row_loss).into(),
            index_errors: dev.index_errors(),
        },
        [groups_for(rows, 1, lim), 1, 1],
    )?;
    dev.launch(
        &KernelKey::of::<k::CrossEntropyReduce>(),
        &p,
        &k::CrossEntropyReduce {
            row_loss: (&row_loss).into(),
            out: (&out).into(),
        },
        [1, 1, 1],
    )?;
    dev.launch(
        &KernelKey::of::<k::CrossEntropyScale>(),
        &p,
        &k::CrossEntropyScale {
            out: (&out).into(),
            grad: (&grad).into(),
        },
        [groups_for(rows * cols, 256, lim), 1, 1],
    )?;
    let loss = crate::ops::layout::slice(&out, 0, 0, 1)?;
    Ok(CrossEntropy { loss, grad })
}

pub(crate) fn variants() -> Vec<KernelKey> {
    vec![
        KernelKey::new("softmax", "softmax_rows"),
        KernelKey::new("softmax", "softmax_rows").flag("LOG", true),
        KernelKey::new("softmax", "cross_entropy_rows"),
        KernelKey::new("softmax", "cross_entropy_reduce"),
        KernelKey::new("softmax", "cross_entropy_scale"),
    ]
}
