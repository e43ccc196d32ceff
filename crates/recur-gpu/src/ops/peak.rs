//! Calibration kernels (`shaders/peak.wgsl`): the device's measured FMA
//! throughput and copy bandwidth, against which every benchmark is read.

use bytemuck::{Pod, Zeroable};

use crate::device::Device;
use crate::error::Result;
use crate::kernel::{Access, KernelKey};
use crate::record::groups_for;
use crate::tensor::{DType, Tensor};

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    n: u32,
    iters: u32,
    _pad: [u32; 2],
}

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
        _pad: [0; 2],
    };
    dev.dispatch(
        &KernelKey::new("peak", "fma_peak"),
        bytemuck::bytes_of(&p),
        &[
            (scratch.storage(), scratch.bytes(), Access::Read),
            (out.storage(), out.bytes(), Access::ReadWrite),
        ],
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
        iters: 0,
        _pad: [0; 2],
    };
    dev.dispatch(
        &KernelKey::new("peak", "copy_peak"),
        bytemuck::bytes_of(&p),
        &[
            (src.storage(), src.bytes(), Access::Read),
            (dst.storage(), dst.bytes(), Access::ReadWrite),
        ],
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
        KernelKey::new("peak", "fma_peak"),
        KernelKey::new("peak", "copy_peak"),
    ]
}
