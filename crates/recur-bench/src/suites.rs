//! The benchmark suites.

use recur_gpu::ops::elementwise;
use recur_gpu::ops::gemm::{Gemm, GemmKernel};
use recur_gpu::ops::peak;
use recur_gpu::{DType, Device, Rng, Tensor};

use crate::record::{shape, Record};
use crate::timing::measure;

pub(crate) fn device_name(dev: &Device) -> String {
    format!("{} ({:?})", dev.info().name, dev.info().backend)
}

/// The copy kernel's bandwidth (GB/s, read + written) over 64 MiB, against
/// which the memory-bound suites report their fraction.
pub(crate) fn copy_gbps(dev: &Device, runs: usize) -> anyhow::Result<f64> {
    let (src, dst) = peak::scratch(dev, 16 << 20)?;
    let mut bytes = 0.0;
    let t = measure(dev, runs, 1, || {
        bytes = peak::copy_peak(dev, &src, &dst)?;
        Ok(())
    })?;
    Ok(bytes / t.median() / 1e6)
}

/// FMA throughput and copy bandwidth of this adapter.
pub fn peak(dev: &Device, runs: usize) -> anyhow::Result<Vec<Record>> {
    let mut out = Vec::new();
    let invocations = 1 << 16;
    let iters = 1024;
    let (src, dst) = peak::scratch(dev, 4 * invocations as usize)?;
    let mut flops = 0.0;
    let t = measure(dev, runs, 1, || {
        flops = peak::fma_peak(dev, &src, &dst, invocations, iters)?;
        Ok(())
    })?;
    let dims = shape(&[
        ("invocations", invocations as usize),
        ("iters", iters as usize),
    ]);
    out.push(Record {
        gflops: flops / t.median() / 1e6,
        ..Record::timed(dev, ["peak", "fma_peak", "fwd"], dims, &t)
    });
    let floats = 16 << 20; // 64 MiB each way
    let (src, dst) = peak::scratch(dev, floats)?;
    let mut bytes = 0.0;
    let t = measure(dev, runs, 1, || {
        bytes = peak::copy_peak(dev, &src, &dst)?;
        Ok(())
    })?;
    let dims = shape(&[("bytes", floats * 4)]);
    out.push(Record {
        gbps: bytes / t.median() / 1e6,
        ..Record::timed(dev, ["peak", "copy_peak", "fwd"], dims, &t)
    });
    Ok(out)
}

/// One GEMM configuration.
#[derive(Clone, Copy)]
pub struct GemmCase {
    /// (M, N, K).
    pub shape: (usize, usize, usize),
    /// Kernel.
    pub kernel: GemmKernel,
    /// Operand transposes.
    pub trans: (bool, bool),
    /// Storage dtype of A, B and C.
    pub dtype: DType,
}

impl GemmCase {
    pub(crate) fn new(shape: (usize, usize, usize), kernel: GemmKernel) -> Self {
        Self {
            shape,
            kernel,
            trans: (false, false),
            dtype: DType::F32,
        }
    }
}

/// Measures one GEMM configuration.
pub fn gemm_case(dev: &Device, runs: usize, case: GemmCase) -> anyhow::Result<Record> {
    let GemmCase {
        shape: (m, n, k),
        kernel,
        trans: (trans_a, trans_b),
        dtype,
    } = case;
    let mut rng = Rng::new(1);
    let a_shape = if trans_a { [k, m] } else { [m, k] };
    let b_shape = if trans_b { [n, k] } else { [k, n] };
    let store = |t: Tensor| elementwise::cast(&t, dtype);
    let a = store(Tensor::randn(dev, &a_shape, 0.0, 1.0, &mut rng)?)?;
    let b = store(Tensor::randn(dev, &b_shape, 0.0, 1.0, &mut rng)?)?;
    let c = store(Tensor::zeros(dev, &[m, n])?)?;
    let cfg = Gemm {
        trans_a,
        trans_b,
        kernel,
        ..Gemm::default()
    };
    let t = measure(dev, runs, 1, || Ok(cfg.run_into(&a, &b, None, &c)?))?;
    let flops = 2.0 * (m * n * k) as f64;
    let bytes = (dtype.size() * (m * k + k * n + m * n)) as f64;
    let info = dev.info();
    // A tuning device picks Auto's kernel per shape class (dev.tuned()).
    let mut name = match kernel.resolve(info.device_type, info.coop_f16) {
        _ if kernel == GemmKernel::Auto && dev.tuning() => "gemm_auto".to_string(),
        GemmKernel::Coop => "gemm_coop_f16in".to_string(),
        GemmKernel::Tiled | GemmKernel::Auto => "gemm_tiled".to_string(),
        GemmKernel::Blocked => "gemm_blocked".to_string(),
        GemmKernel::Wide => "gemm_wide".to_string(),
        GemmKernel::Naive => "gemm_naive".to_string(),
    };
    match (trans_a, trans_b) {
        (false, true) => name.push_str("_nt"),
        (true, false) => name.push_str("_tn"),
        (true, true) => name.push_str("_tt"),
        (false, false) => {}
    }
    let dims = shape(&[("m", m), ("n", n), ("k", k)]);
    Ok(Record {
        dtype: dtype_name(dtype).into(),
        gflops: flops / t.median() / 1e6,
        gbps: bytes / t.median() / 1e6,
        ..Record::timed(dev, ["gemm", &name, "fwd"], dims, &t)
    })
}

/// The record field for a dtype.
pub(crate) fn dtype_name(d: DType) -> &'static str {
    match d {
        DType::F16 => "f16",
        _ => "f32",
    }
}

/// The storage dtypes this adapter runs: f32, and f16 with SHADER_F16.
pub(crate) fn dtypes(dev: &Device) -> Vec<DType> {
    let mut v = vec![DType::F32];
    if dev.half_dtype() == DType::F16 {
        v.push(DType::F16);
    }
    v
}

/// The GEMM suite: the default kernel for this adapter at several shapes,
/// then at the headline shape (1024³) every kernel side by side, the naive
/// baseline included, in the same run.
pub fn gemm(dev: &Device, runs: usize, quick: bool) -> anyhow::Result<Vec<Record>> {
    let mut out = Vec::new();
    let shapes: &[(usize, usize, usize)] = if quick {
        &[(256, 256, 256)]
    } else {
        &[
            (256, 256, 256),
            (512, 512, 512),
            (4096, 1024, 256),
            (2048, 2048, 2048),
        ]
    };
    for &s in shapes {
        out.push(gemm_case(dev, runs, GemmCase::new(s, GemmKernel::Auto))?);
    }
    let headline = (1024, 1024, 1024);
    for kernel in [GemmKernel::Tiled, GemmKernel::Wide, GemmKernel::Blocked] {
        for dtype in dtypes(dev) {
            for trans_b in [false, true] {
                let case = GemmCase {
                    trans: (false, trans_b),
                    dtype,
                    ..GemmCase::new(headline, kernel)
                };
                out.push(gemm_case(dev, runs, case)?);
            }
        }
    }
    // Tensor cores (f16 products, f32 accumulation), where the device has
    // them (`RECUR_COOPERATIVE_MATRIX=1`), and the large cube on GPUs.
    let big = (4096, 4096, 4096);
    let gpu = dev.info().device_type != recur_gpu::wgpu::DeviceType::Cpu;
    if gpu && !quick {
        out.push(gemm_case(dev, runs, GemmCase::new(big, GemmKernel::Auto))?);
    }
    if dev.info().coop_f16 {
        let mut sizes = vec![headline];
        if !quick {
            sizes.push(big);
        }
        for s in sizes {
            for trans_b in [false, true] {
                let case = GemmCase {
                    trans: (false, trans_b),
                    ..GemmCase::new(s, GemmKernel::Coop)
                };
                out.push(gemm_case(dev, runs, case)?);
            }
        }
    }
    let naive = GemmCase::new(headline, GemmKernel::Naive);
    out.push(gemm_case(dev, runs.min(5), naive)?);
    // The weight-gradient shape of the rnn suite: dgatesᵀ (4H × T·B) · h (T·B × H).
    let wgrad = GemmCase {
        trans: (true, false),
        ..GemmCase::new((1024, 256, 4096), GemmKernel::Auto)
    };
    out.push(gemm_case(dev, runs, wgrad)?);
    Ok(out)
}
