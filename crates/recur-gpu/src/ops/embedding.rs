//! Embedding gather and its scatter-add backward (`shaders/embedding.wgsl`).

use bytemuck::{Pod, Zeroable};

use super::{all_f32, device_of, u32_of};
use crate::error::{check_shape, Error, Result};
use crate::kernel::{Access, KernelKey};
use crate::record::groups_for;
use crate::tensor::{DType, Tensor};

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    tokens: u32,
    vocab: u32,
    dim: u32,
    _pad: u32,
}

fn table_dims(op: &'static str, table: &Tensor) -> Result<(usize, usize)> {
    match *table.shape() {
        [v, d] if v > 0 => Ok((v, d)),
        _ => Err(Error::ShapeMismatch {
            op,
            expected: "a table of shape (V, D) with V > 0".into(),
            got: table.shape().to_vec(),
        }),
    }
}

/// Looks up rows of `table` (V, D) for u32 `ids` of any shape; the output is
/// `ids.shape + [D]`. Ids ≥ V give zero rows (check ids on the host first).
pub fn embedding(table: &Tensor, ids: &Tensor) -> Result<Tensor> {
    let op = "embedding";
    let dev = device_of(op, &[table, ids])?;
    all_f32(op, &[table])?;
    ids.expect_dtype(op, DType::U32)?;
    let (v, d) = table_dims(op, table)?;
    let mut shape = ids.shape().to_vec();
    shape.push(d);
    let out = dev.alloc(op, &shape, DType::F32)?;
    if out.numel() == 0 {
        return Ok(out);
    }
    let p = Params {
        tokens: u32_of(op, "tokens", ids.numel())?,
        vocab: u32_of(op, "vocab", v)?,
        dim: u32_of(op, "dim", d)?,
        _pad: 0,
    };
    let lim = dev.info().limits.max_compute_workgroups_per_dimension;
    dev.dispatch(
        &KernelKey::new("embedding", "gather"),
        bytemuck::bytes_of(&p),
        &[
            (ids.storage(), ids.bytes(), Access::Read),
            (table.storage(), table.bytes(), Access::Read),
            (out.storage(), out.bytes(), Access::ReadWrite),
        ],
        [groups_for(out.numel(), 256, lim), 1, 1],
    )?;
    Ok(out)
}

/// Backward of [`embedding`]: adds each row of `dout` (ids.shape + [D]) into
/// `grad` (V, D) at its id, in place (so gradients accumulate).
pub fn embedding_backward_into(grad: &Tensor, ids: &Tensor, dout: &Tensor) -> Result<()> {
    let op = "embedding_backward";
    let dev = device_of(op, &[grad, ids, dout])?;
    all_f32(op, &[grad, dout])?;
    ids.expect_dtype(op, DType::U32)?;
    let (v, d) = table_dims(op, grad)?;
    let mut shape = ids.shape().to_vec();
    shape.push(d);
    check_shape(op, &shape, dout.shape())?;
    if dout.numel() == 0 {
        return Ok(());
    }
    let p = Params {
        tokens: u32_of(op, "tokens", ids.numel())?,
        vocab: u32_of(op, "vocab", v)?,
        dim: u32_of(op, "dim", d)?,
        _pad: 0,
    };
    let lim = dev.info().limits.max_compute_workgroups_per_dimension;
    dev.dispatch(
        &KernelKey::new("embedding", "scatter_add"),
        bytemuck::bytes_of(&p),
        &[
            (ids.storage(), ids.bytes(), Access::Read),
            (dout.storage(), dout.bytes(), Access::Read),
            (grad.storage(), grad.bytes(), Access::ReadWrite),
        ],
        [groups_for(d, 256, lim), 1, 1],
    )
}

pub(crate) fn variants() -> Vec<KernelKey> {
    vec![
        KernelKey::new("embedding", "gather"),
        KernelKey::new("embedding", "scatter_add"),
    ]
}
