//! Calibration kernels (`shaders/peak.wgsl`): the device's measured FMA
//! throughput and copy bandwidth, against which every benchmark is read.

use crate::bindings::peak::{self as k, Params};
use crate::device::Device;
use crate::error::Result;
use crate::kernel::KernelKey;
use crate::record::groups_for;
use crate::tensor::{DType, Tensor};

/// Records `invocations` invocations of the FMA loop (`iters` rounds each);
/// returns the floating-point operations it performs.
pub fn fma_peak(
    dev: &Device,
    scratch: &Tensor,
    out: &Tensor,
    invocations: u32,
    iters: u32,
) -> Result<f64> {
    let p = Params {
        n: (scratch.numel() / 4) as u32,
        iters,
        ..Params::default()
    };
    dev.launch(
        &KernelKey::of::<k::FmaPeak>(),
        &p,
        &k::FmaPeak {
            src: scratch.into(),
            dst: out.into(),
        },
        [invocations.div_ceil(256), 1, 1],
    )?;
    Ok(invocations as f64 * iters as f64 * 64.0)
}

/// Records a copy of `src` into `dst` (same size, a multiple of 4 floats);
/// returns the bytes moved (read + written).
pub fn copy_peak(dev: &Device, src: &Tensor, dst: &Tensor) -> Result<f64> {
    let n = src.numel() / 4;
    let p = Params {
        n: n as u32,
        ..Params::default()
    };
    dev.launch(
        &KernelKey::of::<k::CopyPeak>(),
        &p,
        &k::CopyPeak {
            src: src.into(),
            dst: dst.into(),
        },
        [
            groups_for(
                n,
                256,
                dev.info().limits.max_compute_workgroups_per_dimension,
            ),
            1,
            1,
        ],
    )?;
    Ok(2.0 * src.bytes() as f64)
}

/// Scratch tensors for the calibration kernels.
pub fn scratch(dev: &Device, floats: usize) -> Result<(Tensor, Tensor)> {
    let a = Tensor::full(dev, &[floats], 1.0)?;
    let b = dev.alloc("peak", &[floats], DType::F32)?;
    Ok((a, b))
}

pub(crate) fn variants() -> Vec<KernelKey> {
    vec![
        KernelKey::of::<k::FmaPeak>(),
        KernelKey::of::<k::CopyPeak>(),
    ]
}
