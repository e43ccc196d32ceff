//! The benchmark suites.

use recur_gpu::ops::gemm::{Gemm, GemmKernel};
use recur_gpu::ops::peak;
use recur_gpu::{Device, Rng, Tensor};

use crate::record::{shape, Record};
use crate::timing::measure;

pub(crate) fn device_name(dev: &Device) -> String {
    format!("{} ({:?})", dev.info().name, dev.info().backend)
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

/// One GEMM configuration measured with `kernel`.
pub fn gemm_case(
    dev: &Device,
    runs: usize,
    (m, n, k): (usize, usize, usize),
    kernel: GemmKernel,
    trans_b: bool,
) -> anyhow::Result<Record> {
    gemm_case_t(dev, runs, (m, n, k), kernel, false, trans_b)
}

/// [`gemm_case`] with either operand transposed.
pub fn gemm_case_t(
    dev: &Device,
    runs: usize,
    (m, n, k): (usize, usize, usize),
    kernel: GemmKernel,
    trans_a: bool,
    trans_b: bool,
) -> anyhow::Result<Record> {
    let mut rng = Rng::new(1);
    let a_shape = if trans_a { [k, m] } else { [m, k] };
    let a = Tensor::randn(dev, &a_shape, 0.0, 1.0, &mut rng)?;
    let b_shape = if trans_b { [n, k] } else { [k, n] };
    let b = Tensor::randn(dev, &b_shape, 0.0, 1.0, &mut rng)?;
    let c = Tensor::zeros(dev, &[m, n])?;
    let cfg = Gemm {
        trans_a,
        trans_b,
        kernel,
        ..Gemm::default()
    };
    let t = measure(dev, runs, 1, || Ok(cfg.run_into(&a, &b, None, &c)?))?;
    let flops = 2.0 * (m * n * k) as f64;
    let bytes = 4.0 * (m * k + k * n + m * n) as f64;
    let mut name = match kernel.resolve(dev.info().device_type) {
        GemmKernel::Tiled | GemmKernel::Auto => "gemm_tiled".to_string(),
        GemmKernel::Blocked => "gemm_blocked".to_string(),
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
        gflops: flops / t.median() / 1e6,
        gbps: bytes / t.median() / 1e6,
        ..Record::timed(dev, ["gemm", &name, "fwd"], dims, &t)
    })
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
        out.push(gemm_case(dev, runs, s, GemmKernel::Auto, false)?);
    }
    let headline = (1024, 1024, 1024);
    for kernel in [GemmKernel::Tiled, GemmKernel::Blocked] {
        out.push(gemm_case(dev, runs, headline, kernel, false)?);
        out.push(gemm_case(dev, runs, headline, kernel, true)?);
    }
    out.push(gemm_case(
        dev,
        runs.min(5),
        headline,
        GemmKernel::Naive,
        false,
    )?);
    // The weight-gradient shape of the rnn suite: dgatesᵀ (4H × T·B) · h (T·B × H).
    out.push(gemm_case_t(
        dev,
        runs,
        (1024, 256, 4096),
        GemmKernel::Auto,
        true,
        false,
    )?);
    Ok(out)
}
