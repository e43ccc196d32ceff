//! The kernels a browser must get right, checked there against the CPU
//! references (compiled to wasm with the page): a GEMM, the fused LSTM
//! forward and backward, and both scans' strategies. Odd sizes, so that no
//! kernel's tile or subgroup width divides them.

use recur_gpu::ops::gemm::{matmul, Gemm, GemmShape};
use recur_gpu::ops::rnn::{rnn_backward, rnn_forward, Cell, RnnWeights};
use recur_gpu::ops::scan::{scan, ScanKind, ScanLayout, ScanStrategy};
use recur_gpu::reference;
use recur_gpu::reference::{RnnDims, RnnParams};
use recur_gpu::{Device, Error, Result, Rng, Tensor};
use serde::Serialize;

/// One comparison: the largest |GPU − CPU| over a result, against its tolerance.
#[derive(Clone, Debug, Serialize)]
pub struct Check {
    pub name: String,
    pub max_abs_err: f64,
    pub tolerance: f64,
    pub ok: bool,
    /// What else the check saw (an error's message).
    pub detail: String,
}

impl Check {
    #[doc(hidden)]
    pub fn new_for_test(name: &str, gpu: &[f32], cpu: &[f64], tolerance: f64) -> Self {
        Self::new(name, gpu, cpu, tolerance)
    }

    fn new(name: &str, gpu: &[f32], cpu: &[f64], tolerance: f64) -> Self {
        let max_abs_err = if gpu.len() == cpu.len() {
            gpu.iter()
                .zip(cpu)
                .map(|(&g, &c)| (g as f64 - c).abs())
                // NaN compares false: keep it, so a NaN fails the check.
                .fold(0.0, |m: f64, e| if e > m || e.is_nan() { e } else { m })
        } else {
            f64::INFINITY // a wrong length is a failure, not a panic
        };
        Self {
            name: name.into(),
            max_abs_err,
            tolerance,
            ok: max_abs_err <= tolerance,
            detail: String::new(),
        }
    }
}

fn random(rng: &mut Rng, n: usize, lo: f32, hi: f32) -> Vec<f32> {
    (0..n).map(|_| rng.uniform(lo, hi)).collect()
}

fn wide(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

/// Every check, in order: GEMM, LSTM forward, LSTM backward, scans.
pub async fn run_all(dev: &Device) -> Result<Vec<Check>> {
    let mut out = vec![gemm(dev).await?];
    out.extend(lstm(dev).await?);
    out.extend(scans(dev).await?);
    out.push(raised_error(dev).await);
    out.push(lost_device().await);
    Ok(out)
}

/// (37, 29) x (29, 45) against the reference GEMM.
pub async fn gemm(dev: &Device) -> Result<Check> {
    let (m, k, n) = (37, 29, 45);
    let mut rng = Rng::new(11);
    let (a, b) = (
        random(&mut rng, m * k, -1.0, 1.0),
        random(&mut rng, k * n, -1.0, 1.0),
    );
    let c = matmul(
        &Tensor::from_slice(dev, &a, &[m, k])?,
        &Tensor::from_slice(dev, &b, &[k, n])?,
    )?;
    let shape = GemmShape {
        z: 1,
        m,
        n,
        k,
        shared_b: true,
    };
    let mut want = vec![0.0; m * n];
    reference::gemm(&Gemm::default(), &shape, &a, &b, None, &mut want);
    Ok(Check::new(
        "gemm 37x29x45",
        &c.to_vec_async().await?,
        &wide(&want),
        1e-4,
    ))
}

/// A fused LSTM layer (T 5, B 3, I 7, H 6) forward and backward from a
/// given state, against the f64 reference.
pub async fn lstm(dev: &Device) -> Result<Vec<Check>> {
    let d = RnnDims {
        t: 5,
        b: 3,
        i: 7,
        h: 6,
    };
    let g = Cell::Lstm.gates() * d.h;
    let mut rng = Rng::new(12);
    let mut r = |n| random(&mut rng, n, -0.5, 0.5);
    let (w_ih, w_hh, b_ih, b_hh) = (r(g * d.i), r(g * d.h), r(g), r(g));
    let (x, h0, c0) = (r(d.t * d.b * d.i), r(d.b * d.h), r(d.b * d.h));
    let (dout, dh_n, dc_n) = (r(d.t * d.b * d.h), r(d.b * d.h), r(d.b * d.h));
    let t = |v: &[f32], s: &[usize]| Tensor::from_slice(dev, v, s);
    let (tw_ih, tw_hh, tb_ih, tb_hh) = (
        t(&w_ih, &[g, d.i])?,
        t(&w_hh, &[g, d.h])?,
        t(&b_ih, &[g])?,
        t(&b_hh, &[g])?,
    );
    let w = RnnWeights {
        w_ih: &tw_ih,
        w_hh: &tw_hh,
        b_ih: Some(&tb_ih),
        b_hh: Some(&tb_hh),
    };
    let (tx, th0, tc0) = (
        t(&x, &[d.t, d.b, d.i])?,
        t(&h0, &[d.b, d.h])?,
        t(&c0, &[d.b, d.h])?,
    );
    let fwd = rnn_forward(Cell::Lstm, &w, &tx, Some(&th0), Some(&tc0), false, true)?;
    let cache = fwd
        .cache
        .as_ref()
        .ok_or_else(|| recur_gpu::Error::InvalidArgument {
            op: "checks::lstm",
            what: "a training forward kept no cache".into(),
        })?;
    let (tdout, tdh, tdc) = (
        t(&dout, &[d.t, d.b, d.h])?,
        t(&dh_n, &[d.b, d.h])?,
        t(&dc_n, &[d.b, d.h])?,
    );
    let grads = rnn_backward(&w, cache, &tdout, Some(&tdh), Some(&tdc))?;

    let p = RnnParams {
        w_ih: wide(&w_ih),
        w_hh: wide(&w_hh),
        b_ih: wide(&b_ih),
        b_hh: wide(&b_hh),
    };
    let xw = wide(&x);
    let want = reference::rnn_forward(Cell::Lstm, d, &p, &xw, &wide(&h0), &wide(&c0), false);
    let (dout, dh_n, dc_n) = (wide(&dout), wide(&dh_n), wide(&dc_n));
    let wg = reference::rnn_backward(Cell::Lstm, d, &p, &xw, &want, [&dout, &dh_n, &dc_n]);
    let c_n = match &fwd.c_n {
        Some(c) => c.to_vec_async().await?,
        None => Vec::new(),
    };
    let mut out = vec![
        Check::new(
            "lstm forward: output",
            &fwd.output.to_vec_async().await?,
            &want.out,
            1e-5,
        ),
        Check::new(
            "lstm forward: h_n",
            &fwd.h_n.to_vec_async().await?,
            &want.h_n,
            1e-5,
        ),
        Check::new("lstm forward: c_n", &c_n, &want.c_n, 1e-5),
    ];
    let db_ih = match &grads.db_ih {
        Some(b) => b.to_vec_async().await?,
        None => Vec::new(),
    };
    for (name, gpu, cpu) in [
        ("lstm backward: dx", grads.dx.to_vec_async().await?, &wg.dx),
        (
            "lstm backward: dh0",
            grads.dh0.to_vec_async().await?,
            &wg.dh0,
        ),
        (
            "lstm backward: dw_ih",
            grads.dw_ih.to_vec_async().await?,
            &wg.params.w_ih,
        ),
        (
            "lstm backward: dw_hh",
            grads.dw_hh.to_vec_async().await?,
            &wg.params.w_hh,
        ),
        ("lstm backward: db_ih", db_ih, &wg.params.b_ih),
    ] {
        out.push(Check::new(name, &gpu, cpu, 1e-4));
    }
    Ok(out)
}

/// Linear and log scans (B 3, T 37, D 5) with every strategy.
pub async fn scans(dev: &Device) -> Result<Vec<Check>> {
    let (b, t, dch) = (3, 37, 5);
    let n = b * t * dch;
    let mut rng = Rng::new(13);
    let mut out = Vec::new();
    for kind in [ScanKind::Linear, ScanKind::Log] {
        let (a, x) = match kind {
            ScanKind::Linear => (
                random(&mut rng, n, 0.5, 1.0),
                random(&mut rng, n, -1.0, 1.0),
            ),
            ScanKind::Log => (
                random(&mut rng, n, -0.7, 0.0),
                random(&mut rng, n, -2.0, 1.0),
            ),
        };
        let mut want = vec![0.0; n];
        for bi in 0..b {
            for c in 0..dch {
                let at = |i: usize| (bi * t + i) * dch + c;
                let aa: Vec<f64> = (0..t).map(|i| a[at(i)] as f64).collect();
                let xx: Vec<f64> = (0..t).map(|i| x[at(i)] as f64).collect();
                let h = match kind {
                    ScanKind::Linear => reference::linear_scan(&aa, &xx, 0.0),
                    ScanKind::Log => reference::log_scan(&aa, &xx, f64::NEG_INFINITY),
                };
                for (i, v) in h.into_iter().enumerate() {
                    want[at(i)] = v;
                }
            }
        }
        let ta = Tensor::from_slice(dev, &a, &[b, t, dch])?;
        let tx = Tensor::from_slice(dev, &x, &[b, t, dch])?;
        for strategy in [
            ScanStrategy::Serial,
            ScanStrategy::Chunked,
            ScanStrategy::TimeParallel,
        ] {
            let h = scan(kind, &ta, &tx, None, ScanLayout::BatchFirst, strategy)?.h;
            let name = format!("{kind:?} scan ({strategy:?})").to_lowercase();
            out.push(Check::new(&name, &h.to_vec_async().await?, &want, 1e-4));
        }
    }
    Ok(out)
}

/// An error wgpu raises (here a buffer with usages WebGPU forbids together,
/// made behind recur's back) comes back from the next readback as recur's
/// typed [`Error::Validation`], and the device goes on working.
pub async fn raised_error(dev: &Device) -> Check {
    let _bad = dev
        .wgpu_device()
        .create_buffer(&recur_gpu::wgpu::BufferDescriptor {
            label: Some("checks::raised_error"),
            size: 16,
            usage: recur_gpu::wgpu::BufferUsages::MAP_READ | recur_gpu::wgpu::BufferUsages::STORAGE,
            mapped_at_creation: false,
        });
    let first = dev.sync_async().await;
    let after = dev.sync_async().await;
    let ok = matches!(first, Err(Error::Validation { .. })) && after.is_ok();
    Check {
        name: "a wgpu validation error comes back typed".into(),
        max_abs_err: if ok { 0.0 } else { 1.0 },
        tolerance: 0.0,
        ok,
        detail: format!("{first:?}; then {after:?}"),
    }
}

/// A device lost (here destroyed on purpose: a second device, so the page's
/// own goes on) fails the next readback with [`Error::DeviceLost`].
pub async fn lost_device() -> Check {
    let (ok, detail) = match Device::new_async().await {
        Err(e) => (false, format!("no second device: {e}")),
        Ok(dev) => {
            let t = Tensor::from_slice(&dev, &[1.0, 2.0], &[2]);
            dev.wgpu_device().destroy();
            let read = match t {
                Ok(t) => t.to_vec_async().await.map(|_| ()),
                Err(e) => Err(e),
            };
            (
                matches!(read, Err(Error::DeviceLost(_))),
                format!("{read:?}"),
            )
        }
    };
    Check {
        name: "a lost device comes back typed".into(),
        max_abs_err: if ok { 0.0 } else { 1.0 },
        tolerance: 0.0,
        ok,
        detail,
    }
}
