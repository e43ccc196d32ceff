//! Elementwise launchers (`shaders/elementwise.wgsl`).

use super::{all_f32, device_of, u32_of, Activation};
use crate::bindings::elementwise::{self as k, Params};
use crate::device::Device;
use crate::error::{check_shape, Error, Result};
use crate::kernel::KernelKey;
use crate::record::groups_for;
use crate::tensor::{DType, Tensor};

fn params(
    op: &'static str,
    n: usize,
    nb: usize,
    code: u32,
    alpha: f32,
    beta: f32,
) -> Result<Params> {
    Ok(Params {
        n: u32_of(op, "elements", n)?,
        nb: u32_of(op, "elements", nb.max(1))?,
        op: code,
        inner: 1,
        alpha,
        beta,
        ..Params::default()
    })
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

/// Binary ops; the second operand may be broadcast over leading dimensions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum BinaryOp {
    /// a + αb
    Add = 0,
    /// a − αb
    Sub = 1,
    /// a ⊙ b
    Mul = 2,
    /// a / b
    Div = 3,
}

/// Writes `value` into every element of `t` (in place).
pub fn fill(t: &Tensor, value: f32) -> Result<()> {
    let dev = device_of("fill", &[t])?;
    t.expect_dtype("fill", DType::F32)?;
    if t.numel() == 0 {
        return Ok(());
    }
    // Slices of at most one binding, at aligned offsets, for tensors
    // larger than a binding.
    let limits = &dev.info().limits;
    let align = (limits.min_storage_buffer_offset_alignment as usize / 4).max(1);
    let per = (limits.max_storage_buffer_binding_size as usize / 4 / align).max(1) * align;
    let mut start = 0;
    while start < t.numel() {
        let len = per.min(t.numel() - start);
        let p = params("fill", len, 1, 0, value, 0.0)?;
        dev.launch(
            &KernelKey::of::<k::Fill>(),
            &p,
            &k::Fill {
                y: t.bind_range(4 * start as u64, 4 * len as u64),
            },
            groups(&dev, len),
        )?;
        start += len;
    }
    Ok(())
}

/// An inverted-dropout mask of `shape`: each element is 0 with probability
/// `p` and 1/(1 − p) otherwise, drawn on the GPU from a hash of `seed` and
/// the element's index (the same mask as [`crate::reference::dropout_mask`]).
pub fn dropout_mask(dev: &Device, shape: &[usize], p: f32, seed: u64) -> Result<Tensor> {
    let op = "dropout_mask";
    if !(0.0..1.0).contains(&p) {
        return Err(Error::InvalidArgument {
            op,
            what: format!("p must be in [0, 1), got {p}"),
        });
    }
    let t = dev.alloc(op, shape, DType::F32)?;
    if t.numel() == 0 {
        return Ok(t);
    }
    let keep = 1.0 - p;
    let mut prm = params(op, t.numel(), 1, seed as u32, keep, 1.0 / keep)?;
    prm._pad = (seed >> 32) as u32;
    dev.launch(
        &KernelKey::of::<k::DropoutMask>(),
        &prm,
        &k::DropoutMask { y: (&t).into() },
        groups(dev, t.numel()),
    )?;
    Ok(t)
}

/// `act(alpha * x + beta)`, elementwise.
pub fn unary(x: &Tensor, act: Activation, alpha: f32, beta: f32) -> Result<Tensor> {
    let dev = device_of("unary", &[x])?;
    all_f32("unary", &[x])?;
    let y = dev.alloc("unary", x.shape(), DType::F32)?;
    if x.numel() == 0 {
        return Ok(y);
    }
    let p = params("unary", x.numel(), 1, act as u32, alpha, beta)?;
    dev.launch(
        &KernelKey::of::<k::Unary>(),
        &p,
        &k::Unary {
            x: x.into(),
            y: (&y).into(),
        },
        groups(&dev, x.numel()),
    )?;
    Ok(y)
}

/// `act(x)`.
pub fn activation(x: &Tensor, act: Activation) -> Result<Tensor> {
    unary(x, act, 1.0, 0.0)
}

/// `alpha * x`.
pub fn scale(x: &Tensor, alpha: f32) -> Result<Tensor> {
    unary(x, Activation::Identity, alpha, 0.0)
}

/// Backward of [`activation`]: `dy ⊙ act'(x)` with `x` the forward input.
pub fn activation_backward(x: &Tensor, dy: &Tensor, act: Activation) -> Result<Tensor> {
    let dev = device_of("activation_backward", &[x, dy])?;
    all_f32("activation_backward", &[x, dy])?;
    check_shape("activation_backward", x.shape(), dy.shape())?;
    let dx = dev.alloc("activation_backward", x.shape(), DType::F32)?;
    if x.numel() == 0 {
        return Ok(dx);
    }
    let p = params("activation_backward", x.numel(), 1, act as u32, 1.0, 0.0)?;
    dev.launch(
        &KernelKey::of::<k::UnaryBackward>(),
        &p,
        &k::UnaryBackward {
            x: x.into(),
            dy: dy.into(),
            dx: (&dx).into(),
        },
        groups(&dev, x.numel()),
    )?;
    Ok(dx)
}

/// `a op b`, where b's shape equals a's or a trailing part of it (bias rows).
pub fn binary(a: &Tensor, b: &Tensor, op: BinaryOp, alpha: f32) -> Result<Tensor> {
    let axis = a.shape().len().saturating_sub(b.shape().len());
    binary_at(a, b, op, alpha, axis)
}

/// `a op b` with b's shape equal to a's axes `axis..axis + b.rank()`: b is
/// broadcast over a's axes before and after those (per-head values over
/// (B, T, H, P) with `axis` 2, per-step values (B, T, H) with `axis` 0).
pub fn binary_at(a: &Tensor, b: &Tensor, op: BinaryOp, alpha: f32, axis: usize) -> Result<Tensor> {
    let name = "binary";
    let dev = device_of(name, &[a, b])?;
    all_f32(name, &[a, b])?;
    let (sa, sb) = (a.shape(), b.shape());
    let end = axis + sb.len();
    if end > sa.len() || sa[axis..end] != *sb || (b.numel() == 0 && a.numel() != 0) {
        return Err(Error::ShapeMismatch {
            op: name,
            expected: format!("axes {axis}..{end} of {sa:?}"),
            got: sb.to_vec(),
        });
    }
    let inner: usize = sa[end..].iter().product();
    let c = dev.alloc(name, sa, DType::F32)?;
    if a.numel() == 0 {
        return Ok(c);
    }
    let mut p = params(name, a.numel(), b.numel(), op as u32, alpha, 0.0)?;
    p.inner = u32_of(name, "elements", inner)?;
    dev.launch(
        &KernelKey::of::<k::Binary>(),
        &p,
        &k::Binary {
            a: a.into(),
            b: b.into(),
            c: (&c).into(),
        },
        groups(&dev, a.numel()),
    )?;
    Ok(c)
}

/// `a + b`.
pub fn add(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    binary(a, b, BinaryOp::Add, 1.0)
}

/// `a - b`.
pub fn sub(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    binary(a, b, BinaryOp::Sub, 1.0)
}

/// `a ⊙ b`.
pub fn mul(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    binary(a, b, BinaryOp::Mul, 1.0)
}

/// Converts between f32 and f16 storage (f16 pairs are packed in u32 words,
/// so this works without SHADER_F16).
pub fn cast(x: &Tensor, to: DType) -> Result<Tensor> {
    let dev = device_of("cast", &[x])?;
    let to_f16 = match (x.dtype(), to) {
        (a, b) if a == b => return Ok(x.clone()),
        (DType::F32, DType::F16) => true,
        (DType::F16, DType::F32) => false,
        (d, _) => {
            return Err(Error::DType {
                op: "cast",
                dtype: d,
                expected: "F32 -> F16 or F16 -> F32",
            })
        }
    };
    let y = dev.alloc("cast", x.shape(), to)?;
    if x.numel() == 0 {
        return Ok(y);
    }
    let p = params("cast", x.numel(), 1, 0, 0.0, 0.0)?;
    let (x, yb, g) = (x.into(), (&y).into(), groups(&dev, x.numel()));
    if to_f16 {
        let key = KernelKey::of::<k::CastToF16>();
        dev.launch(&key, &p, &k::CastToF16 { x, y: yb }, g)?;
    } else {
        let key = KernelKey::of::<k::CastToF32>();
        dev.launch(&key, &p, &k::CastToF32 { x, y: yb }, g)?;
    }
    Ok(y)
}

pub(crate) fn variants() -> Vec<KernelKey> {
    [
        "fill",
        "dropout_mask",
        "unary",
        "unary_backward",
        "binary",
        "cast_to_f16",
        "cast_to_f32",
    ]
    .into_iter()
    .map(|e| KernelKey::new("elementwise", e))
    .collect()
}
