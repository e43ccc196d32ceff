//! Softmax, log-softmax and fused softmax-cross-entropy (`shaders/softmax.wgsl`).

use bytemuck::{Pod, Zeroable};

use super::{all_f32, device_of, u32_of};
use crate::error::{check_shape, Error, Result};
use crate::kernel::{Access, KernelKey};
use crate::record::groups_for;
use crate::tensor::{DType, Tensor};

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    rows: u32,
    cols: u32,
    ignore_index: u32,
    mean: u32,
}

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
        ignore_index: 0,
        mean: 0,
    };
    let lim = dev.info().limits.max_compute_workgroups_per_dimension;
    dev.dispatch(
        &KernelKey::new("softmax", "softmax_rows").flag("LOG", log),
        bytemuck::bytes_of(&p),
        &[
            (x.storage(), x.bytes(), Access::Read),
            (y.storage(), y.bytes(), Access::ReadWrite),
        ],
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
    let params = bytemuck::bytes_of(&p);
    dev.dispatch(
        &KernelKey::new("softmax", "cross_entropy_rows"),
        params,
        &[
            (logits.storage(), logits.bytes(), Access::Read),
            (targets.storage(), targets.bytes(), Access::Read),
            (grad.storage(), grad.bytes(), Access::ReadWrite),
            (row_loss.storage(), row_loss.bytes(), Access::ReadWrite),
        ],
        [groups_for(rows, 1, lim), 1, 1],
    )?;
    dev.dispatch(
        &KernelKey::new("softmax", "cross_entropy_reduce"),
        params,
        &[
            (row_loss.storage(), row_loss.bytes(), Access::Read),
            (out.storage(), out.bytes(), Access::ReadWrite),
        ],
        [1, 1, 1],
    )?;
    dev.dispatch(
        &KernelKey::new("softmax", "cross_entropy_scale"),
        params,
        &[
            (out.storage(), out.bytes(), Access::Read),
            (grad.storage(), grad.bytes(), Access::ReadWrite),
        ],
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
