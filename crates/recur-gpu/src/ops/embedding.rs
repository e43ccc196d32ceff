//! Embedding gather and its scatter-add backward (`shaders/embedding.wgsl`).

use super::{all_f32, device_of, u32_of};
use crate::bindings::embedding::{self as k, Params};
use crate::error::{check_shape, Error, Result};
use crate::kernel::KernelKey;
use crate::record::groups_for;
use crate::tensor::{DType, Tensor};

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
/// `ids.shape + [D]`. An id ≥ V gives a zero row, and the next readback or
/// sync fails with [`crate::Error::IndexOutOfRange`] naming it (checked on
/// the device: no readback here).
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
        ..Params::default()
    };
    let lim = dev.info().limits.max_compute_workgroups_per_dimension;
    dev.launch(
        &KernelKey::of::<k::Gather>(),
        &p,
        &k::Gather {
            ids: ids.into(),
            table: table.into(),
            out: (&out).into(),
            index_errors: dev.index_errors(),
        },
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
        ..Params::default()
    };
    let lim = dev.info().limits.max_compute_workgroups_per_dimension;
    dev.launch(
        &KernelKey::of::<k::ScatterAdd>(),
        &p,
        &k::ScatterAdd {
            ids: ids.into(),
            dout: dout.into(),
            grad: grad.into(),
        },
        [groups_for(d, 256, lim), 1, 1],
    )
}

pub(crate) fn variants() -> Vec<KernelKey> {
    vec![
        KernelKey::new("embedding", "gather"),
        KernelKey::new("embedding", "scatter_add"),
    ]
}
