//! Reduction launchers (`shaders/reduce.wgsl`).

use super::{all_f32, device_of, u32_of};
use crate::bindings::reduce::{self as k, Params};
use crate::device::Device;
use crate::error::{Error, Result};
use crate::kernel::KernelKey;
use crate::record::groups_for;
use crate::tensor::{DType, Tensor};

/// What a reduction computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Reduce {
    /// Σ x
    Sum = 0,
    /// Σ x / n
    Mean = 1,
    /// max x
    Max = 2,
    /// Σ x²
    SumSquares = 3,
}

/// Reduces `x` over `axis`, removing that axis from the shape.
pub fn reduce(x: &Tensor, axis: usize, op: Reduce) -> Result<Tensor> {
    let dev = device_of("reduce", &[x])?;
    all_f32("reduce", &[x])?;
    let shape = x.shape();
    if axis >= shape.len() {
        return Err(Error::InvalidArgument {
            op: "reduce",
            what: format!("axis {axis} out of range for shape {shape:?}"),
        });
    }
    let outer: usize = shape[..axis].iter().product();
    let inner: usize = shape[axis + 1..].iter().product();
    let mut out_shape = shape.to_vec();
    out_shape.remove(axis);
    if shape[axis] == 0 {
        // As in PyTorch: an empty sum is 0, an empty mean is NaN, and an
        // empty max has no value.
        return match op {
            Reduce::Sum | Reduce::SumSquares => Tensor::zeros(&dev, &out_shape),
            Reduce::Mean => Tensor::full(&dev, &out_shape, f32::NAN),
            Reduce::Max => Err(Error::ShapeMismatch {
                op: "reduce",
                expected: format!("a non-empty axis {axis} for max"),
                got: shape.to_vec(),
            }),
        };
    }
    let y = dev.alloc("reduce", &out_shape, DType::F32)?;
    if y.numel() == 0 {
        return Ok(y);
    }
    let p = Params {
        outer: u32_of("reduce", "outer", outer)?,
        n: u32_of("reduce", "axis length", shape[axis])?,
        inner: u32_of("reduce", "inner", inner)?,
        op: op as u32,
        ..Params::default()
    };
    record(&dev, x, &y, &p)?;
    Ok(y)
}

/// Reduces (outer, n, inner) `x` into `y` as `p` says: a workgroup per row
/// when inner == 1, an invocation per output otherwise.
fn record(dev: &Device, x: &Tensor, y: &Tensor, p: &Params) -> Result<()> {
    let lim = dev.info().limits.max_compute_workgroups_per_dimension;
    let (x, y) = (x.into(), y.into());
    if p.inner == 1 {
        let groups = [groups_for(p.outer as usize, 1, lim), 1, 1];
        dev.launch(
            &KernelKey::of::<k::ReduceRows>(),
            p,
            &k::ReduceRows { x, y },
            groups,
        )
    } else {
        let groups = [groups_for((p.outer * p.inner) as usize, 256, lim), 1, 1];
        dev.launch(
            &KernelKey::of::<k::ReduceCols>(),
            p,
            &k::ReduceCols { x, y },
            groups,
        )
    }
}

/// Σ over `axis`.
pub fn sum(x: &Tensor, axis: usize) -> Result<Tensor> {
    reduce(x, axis, Reduce::Sum)
}

/// Mean over `axis`.
pub fn mean(x: &Tensor, axis: usize) -> Result<Tensor> {
    reduce(x, axis, Reduce::Mean)
}

/// Max over `axis`.
pub fn max(x: &Tensor, axis: usize) -> Result<Tensor> {
    reduce(x, axis, Reduce::Max)
}

/// Workgroups used per tensor by the first pass of [`global_l2_norm`].
const NORM_PARTIALS: usize = 64;

/// `sqrt(Σ_t Σ_i t_i²)` over all `tensors`, as a one-element tensor, without
/// a readback: the global gradient norm of Pascanu et al. (2013).
pub fn global_l2_norm(tensors: &[&Tensor]) -> Result<Tensor> {
    let dev = device_of("global_l2_norm", tensors)?;
    all_f32("global_l2_norm", tensors)?;
    let partials = dev.alloc(
        "global_l2_norm",
        &[tensors.len() * NORM_PARTIALS],
        DType::F32,
    )?;
    for (i, t) in tensors.iter().enumerate() {
        let p = Params {
            outer: 1,
            n: u32_of("global_l2_norm", "elements", t.numel())?,
            inner: 1,
            op: Reduce::SumSquares as u32,
            out_offset: u32_of("global_l2_norm", "tensors", i * NORM_PARTIALS)?,
            ..Params::default()
        };
        // Empty tensors still write zero partials.
        dev.launch(
            &KernelKey::of::<k::SumsqPartial>(),
            &p,
            &k::SumsqPartial {
                x: (*t).into(),
                y: (&partials).into(),
            },
            [NORM_PARTIALS as u32, 1, 1],
        )?;
    }
    let y = dev.alloc("global_l2_norm", &[1], DType::F32)?;
    let p = Params {
        outer: 1,
        n: u32_of("global_l2_norm", "partials", partials.numel())?,
        inner: 1,
        op: Reduce::Sum as u32,
        sqrt_out: 1,
        ..Params::default()
    };
    record(&dev, &partials, &y, &p)?;
    Ok(y)
}

pub(crate) fn variants() -> Vec<KernelKey> {
    ["reduce_rows", "reduce_cols", "sumsq_partial"]
        .into_iter()
        .map(|e| KernelKey::new("reduce", e))
        .collect()
}
