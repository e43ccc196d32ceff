//! Transpose, slice and concat (`shaders/layout.wgsl`).

use super::{device_of, storage_dtype, u32_of};
use crate::bindings::layout::{self as k, Params};
use crate::error::{Error, Result};
use crate::kernel::KernelKey;
use crate::record::groups_for;
use crate::tensor::{DType, Tensor};

/// Swaps the last two axes: (.., R, C) -> (.., C, R).
pub fn transpose(x: &Tensor) -> Result<Tensor> {
    let op = "transpose";
    let dev = device_of(op, &[x])?;
    let dtype = storage_dtype(op, &[x])?;
    let s = x.shape();
    if s.len() < 2 {
        return Err(Error::ShapeMismatch {
            op,
            expected: "rank >= 2".into(),
            got: s.to_vec(),
        });
    }
    let (r, c) = (s[s.len() - 2], s[s.len() - 1]);
    let z: usize = s[..s.len() - 2].iter().product();
    let mut shape = s.to_vec();
    let n = shape.len();
    shape.swap(n - 2, n - 1);
    let y = dev.alloc(op, &shape, dtype)?;
    if y.numel() == 0 {
        return Ok(y);
    }
    let p = Params {
        rows: u32_of(op, "rows", r)?,
        cols: u32_of(op, "cols", c)?,
        ..Params::default()
    };
    let groups = [c.div_ceil(16), r.div_ceil(16), z];
    let lim = dev.info().limits.max_compute_workgroups_per_dimension as usize;
    if groups.iter().any(|&g| g > lim) {
        return Err(Error::TooLarge {
            op,
            shape: s.to_vec(),
            bytes: x.bytes(),
            limit_name: "max_compute_workgroups_per_dimension",
            limit: lim as u64,
        });
    }
    dev.launch(
        &KernelKey::of::<k::Transpose>().flag("F16", dtype == DType::F16),
        &p,
        &k::Transpose {
            src: x.into(),
            dst: (&y).into(),
        },
        groups.map(|g| g as u32),
    )?;
    Ok(y)
}

/// Swaps the first two axes: (R, C, ..) -> (C, R, ..), as between
/// batch-first (B, T, ..) and time-major (T, B, ..) layouts.
pub fn swap01(x: &Tensor) -> Result<Tensor> {
    let op = "swap01";
    let dev = device_of(op, &[x])?;
    let dtype = storage_dtype(op, &[x])?;
    let s = x.shape();
    if s.len() < 2 {
        return Err(Error::ShapeMismatch {
            op,
            expected: "rank >= 2".into(),
            got: s.to_vec(),
        });
    }
    let mut shape = s.to_vec();
    shape.swap(0, 1);
    let y = dev.alloc(op, &shape, dtype)?;
    if y.numel() == 0 {
        return Ok(y);
    }
    let p = Params {
        rows: u32_of(op, "rows", s[0])?,
        cols: u32_of(op, "cols", s[1])?,
        inner: u32_of(op, "inner", s[2..].iter().product())?,
        ..Params::default()
    };
    let lim = dev.info().limits.max_compute_workgroups_per_dimension;
    dev.launch(
        &KernelKey::of::<k::Swap01>().flag("F16", dtype == DType::F16),
        &p,
        &k::Swap01 {
            src: x.into(),
            dst: (&y).into(),
        },
        [groups_for(y.numel(), 256, lim), 1, 1],
    )?;
    Ok(y)
}

fn check_axis(op: &'static str, shape: &[usize], axis: usize) -> Result<()> {
    if axis < shape.len() {
        Ok(())
    } else {
        Err(Error::InvalidArgument {
            op,
            what: format!("axis {axis} out of range for shape {shape:?}"),
        })
    }
}

/// Copies `len` entries of `axis` from `src` (from `src_off`) into `dst`
/// (from `dst_off`); every other dimension agrees.
fn copy_axis(
    src: &Tensor,
    dst: &Tensor,
    axis: usize,
    src_off: usize,
    dst_off: usize,
    len: usize,
) -> Result<()> {
    let op = "copy_axis";
    let dev = device_of(op, &[src, dst])?;
    let outer: usize = src.shape()[..axis].iter().product();
    let inner: usize = src.shape()[axis + 1..].iter().product();
    let total = outer * len * inner;
    if total == 0 {
        return Ok(());
    }
    let p = Params {
        outer: u32_of(op, "outer", outer)?,
        inner: u32_of(op, "inner", inner)?,
        ns: u32_of(op, "axis", src.shape()[axis])?,
        nd: u32_of(op, "axis", dst.shape()[axis])?,
        src_off: u32_of(op, "offset", src_off)?,
        dst_off: u32_of(op, "offset", dst_off)?,
        len: u32_of(op, "length", len)?,
        ..Params::default()
    };
    let lim = dev.info().limits.max_compute_workgroups_per_dimension;
    dev.launch(
        &KernelKey::of::<k::CopyAxis>().flag("F16", src.dtype() == DType::F16),
        &p,
        &k::CopyAxis {
            src: src.into(),
            dst: dst.into(),
        },
        [groups_for(total, 256, lim), 1, 1],
    )
}

/// Elements `start..start + len` of `axis`.
pub fn slice(x: &Tensor, axis: usize, start: usize, len: usize) -> Result<Tensor> {
    let op = "slice";
    let dev = device_of(op, &[x])?;
    let dtype = storage_dtype(op, &[x])?;
    check_axis(op, x.shape(), axis)?;
    if start
        .checked_add(len)
        .is_none_or(|end| end > x.shape()[axis])
    {
        return Err(Error::InvalidArgument {
            op,
            what: format!(
                "range {start}..{} out of bounds for axis {axis} of {:?}",
                start.saturating_add(len),
                x.shape()
            ),
        });
    }
    let mut shape = x.shape().to_vec();
    shape[axis] = len;
    let y = dev.alloc(op, &shape, dtype)?;
    copy_axis(x, &y, axis, start, 0, len)?;
    Ok(y)
}

/// Writes `src` into `dst` at `start` along `axis`, in place; every other
/// dimension must agree.
pub fn write_slice(dst: &Tensor, axis: usize, start: usize, src: &Tensor) -> Result<()> {
    let op = "write_slice";
    device_of(op, &[dst, src])?;
    storage_dtype(op, &[dst, src])?;
    check_axis(op, dst.shape(), axis)?;
    let (ds, ss) = (dst.shape(), src.shape());
    let same = ds.len() == ss.len()
        && ds
            .iter()
            .zip(ss)
            .enumerate()
            .all(|(i, (a, b))| i == axis || a == b);
    if !same || start + ss[axis] > ds[axis] {
        return Err(Error::ShapeMismatch {
            op,
            expected: format!("a block fitting {ds:?} at {start} along axis {axis}"),
            got: ss.to_vec(),
        });
    }
    copy_axis(src, dst, axis, 0, start, ss[axis])
}

/// Joins `parts` along `axis`; all other dimensions must agree.
pub fn concat(parts: &[&Tensor], axis: usize) -> Result<Tensor> {
    let op = "concat";
    let dev = device_of(op, parts)?;
    let dtype = storage_dtype(op, parts)?;
    let first = parts[0].shape();
    check_axis(op, first, axis)?;
    let mut total = 0;
    for t in parts {
        let s = t.shape();
        let same = s.len() == first.len()
            && s.iter()
                .zip(first)
                .enumerate()
                .all(|(i, (a, b))| i == axis || a == b);
        if !same {
            return Err(Error::ShapeMismatch {
                op,
                expected: format!("{first:?} in every axis but {axis}"),
                got: s.to_vec(),
            });
        }
        total += s[axis];
    }
    let mut shape = first.to_vec();
    shape[axis] = total;
    let y = dev.alloc(op, &shape, dtype)?;
    let mut off = 0;
    for t in parts {
        copy_axis(t, &y, axis, 0, off, t.shape()[axis])?;
        off += t.shape()[axis];
    }
    Ok(y)
}

pub(crate) fn variants() -> Vec<KernelKey> {
    let mut v = Vec::new();
    for f16 in [false, true] {
        v.push(KernelKey::of::<k::Transpose>().flag("F16", f16));
        v.push(KernelKey::of::<k::CopyAxis>().flag("F16", f16));
        v.push(KernelKey::of::<k::Swap01>().flag("F16", f16));
    }
    v
}
