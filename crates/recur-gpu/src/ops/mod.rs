//! Op launchers, one module per shader family. Each checks shapes on the
//! host, then records dispatches; none waits on the GPU.

pub mod conv1d;
pub mod elementwise;
pub mod embedding;
pub mod gemm;
pub mod layout;
pub mod linear_attention;
pub mod norm;
pub mod optim;
pub mod peak;
pub mod reduce;
pub mod rnn;
pub mod scan;
pub mod selective_scan;
pub mod softmax;

use crate::device::Device;
use crate::error::{Error, Result};
use crate::kernel::KernelKey;
use crate::tensor::{DType, Tensor};

/// Pointwise functions; the codes match `shaders/shared/activations.wgsl`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
#[non_exhaustive]
pub enum Activation {
    /// x
    Identity = 0,
    /// 1 / (1 + e^-x)
    Sigmoid = 1,
    /// tanh x
    Tanh = 2,
    /// max(x, 0)
    Relu = 3,
    /// x σ(x)
    Silu = 4,
    /// log(1 + e^x)
    Softplus = 5,
    /// elu(x) + 1: x + 1 for x > 0, e^x otherwise (linear attention's φ)
    Elu1 = 6,
    /// e^x
    Exp = 7,
    /// ln x
    Log = 8,
    /// -x
    Neg = 9,
    /// x²
    Square = 10,
    /// log σ(x) = −softplus(−x)
    LogSigmoid = 11,
    /// log g(x) with minGRU's g(x) = x + 0.5 for x ≥ 0, σ(x) otherwise
    /// (Feng et al. 2024), computed without forming g for x < 0
    LogG = 12,
}

impl Activation {
    /// Every activation, for tests and benches.
    pub const ALL: [Activation; 13] = [
        Activation::Identity,
        Activation::Sigmoid,
        Activation::Tanh,
        Activation::Relu,
        Activation::Silu,
        Activation::Softplus,
        Activation::Elu1,
        Activation::Exp,
        Activation::Log,
        Activation::Neg,
        Activation::Square,
        Activation::LogSigmoid,
        Activation::LogG,
    ];
}

/// The device shared by all `tensors`, checking they are f32 unless listed.
pub(crate) fn device_of(op: &'static str, tensors: &[&Tensor]) -> Result<Device> {
    let first = tensors.first().ok_or(Error::InvalidArgument {
        op,
        what: "no operands".into(),
    })?;
    let dev = first.device(op)?;
    for t in &tensors[1..] {
        if !t.device(op)?.same(&dev) {
            return Err(Error::DeviceMismatch { op });
        }
    }
    Ok(dev)
}

/// Fails unless every tensor is f32.
pub(crate) fn all_f32(op: &'static str, tensors: &[&Tensor]) -> Result<()> {
    tensors
        .iter()
        .try_for_each(|t| t.expect_dtype(op, DType::F32))
}

/// The floating-point storage type shared by all `tensors`: F32, or F16 on a
/// device with SHADER_F16 (math stays f32). Anything else is a typed error.
pub(crate) fn storage_dtype(op: &'static str, tensors: &[&Tensor]) -> Result<DType> {
    let first = tensors.first().ok_or(Error::InvalidArgument {
        op,
        what: "no operands".into(),
    })?;
    let dtype = first.dtype();
    for t in tensors {
        t.expect_dtype(op, dtype)?;
    }
    match dtype {
        DType::F32 => Ok(dtype),
        DType::F16 if first.device(op)?.info().has(wgpu::Features::SHADER_F16) => Ok(dtype),
        d => Err(Error::DType {
            op,
            dtype: d,
            expected: "F32, or F16 on an adapter with SHADER_F16",
        }),
    }
}

/// Every (shader, entry, defines) combination the launchers can record, so
/// that tests can validate and translate each one without a GPU.
pub fn kernel_variants() -> Vec<KernelKey> {
    let mut v = Vec::new();
    v.extend(gemm::variants());
    v.extend(conv1d::variants());
    v.extend(elementwise::variants());
    v.extend(reduce::variants());
    v.extend(softmax::variants());
    v.extend(embedding::variants());
    v.extend(layout::variants());
    v.extend(peak::variants());
    v.extend(rnn::variants());
    v.extend(optim::variants());
    v.extend(norm::variants());
    v.extend(scan::variants());
    v.extend(selective_scan::variants());
    v.extend(linear_attention::variants());
    v
}

pub(crate) fn u32_of(op: &'static str, what: &str, x: usize) -> Result<u32> {
    u32::try_from(x).map_err(|_| Error::InvalidArgument {
        op,
        what: format!("{what} = {x} does not fit in u32"),
    })
}
