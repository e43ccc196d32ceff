//! f16 storage (SHADER_F16): the GEMM, the fused recurrences' forward and
//! the scans read and write f16 tensors and compute in f32. Each is checked
//! against the f32 path run on the same f16-rounded inputs, so the only
//! differences are the roundings of what the f16 path stores. Without
//! SHADER_F16 (wgpu's GL backend, or a device opened without it) f16
//! tensors are a typed error and `half_dtype` falls back to f32.

mod common;

use common::{assert_close, data, upload};
use recur_gpu::ops::elementwise::cast;
use recur_gpu::ops::gemm::{Gemm, GemmKernel};
use recur_gpu::ops::rnn::{rnn_forward_run, Cell, RnnRun, RnnStrategy, RnnWeights};
use recur_gpu::ops::scan::{Scan, ScanKind, ScanLayout, ScanStrategy};
use recur_gpu::{reference, wgpu, DType, Device, Error, Tensor};

/// `x` stored as f16, and the same values widened back to f32.
fn halves(dev: &Device, x: &[f32], shape: &[usize]) -> (Tensor, Tensor) {
    let h = cast(&upload(dev, x, shape), DType::F16).unwrap();
    let f = cast(&h, DType::F32).unwrap();
    (h, f)
}

fn f16_device() -> Option<Device> {
    let dev = common::device()?;
    if dev.info().has(wgpu::Features::SHADER_F16) {
        assert_eq!(dev.half_dtype(), DType::F16);
        Some(dev)
    } else {
        assert_eq!(dev.half_dtype(), DType::F32);
        None
    }
}

#[test]
fn gemm_with_f16_storage_matches_the_reference_on_every_kernel() {
    let Some(dev) = f16_device() else { return };
    for kernel in GemmKernel::ALL {
        for (m, n, k) in [(37, 70, 21), (9, 130, 67)] {
            for bits in 0..8 {
                let cfg = Gemm {
                    trans_a: bits & 1 != 0,
                    trans_b: bits & 2 != 0,
                    kernel,
                    ..Gemm::default()
                };
                let bias = bits & 4 != 0;
                let a_shape = if cfg.trans_a { [k, m] } else { [m, k] };
                let b_shape = if cfg.trans_b { [n, k] } else { [k, n] };
                let (a16, a32) = halves(&dev, &data(m * k, 1), &a_shape);
                let (b16, b32) = halves(&dev, &data(k * n, 2), &b_shape);
                let (c16, c32) = halves(&dev, &data(n, 3), &[n]);
                let got = cfg.run(&a16, &b16, bias.then_some(&c16)).unwrap();
                assert_eq!(got.dtype(), DType::F16);
                // The reference on the same f16-rounded values, in f64.
                let host = |t: &Tensor| t.to_vec().unwrap();
                let mut want = vec![0.0; m * n];
                let c_host = host(&c32);
                reference::gemm(
                    &cfg,
                    &cfg.shape(&a16, &b16).unwrap(),
                    &host(&a32),
                    &host(&b32),
                    bias.then_some(&c_host[..]),
                    &mut want,
                );
                assert_close(
                    &format!("{cfg:?} bias={bias} {m}x{n}x{k}"),
                    &got.to_vec().unwrap(),
                    &want,
                    1e-3,
                    1e-3,
                );
            }
        }
    }
}

#[test]
fn scans_with_f16_storage_match_f32_for_every_strategy() {
    let Some(dev) = f16_device() else { return };
    for (bs, t, d) in [(2, 7, 5), (3, 300, 12)] {
        let n = bs * t * d;
        for kind in [ScanKind::Linear, ScanKind::Log] {
            let a_host: Vec<f32> = data(n, 4)
                .iter()
                .map(|u| match kind {
                    ScanKind::Linear => 0.6 + 0.35 * u,
                    ScanKind::Log => (0.6 + 0.35 * u).ln(),
                })
                .collect();
            let (a16, a32) = halves(&dev, &a_host, &[bs, t, d]);
            let (b16, b32) = halves(&dev, &data(n, 5), &[bs, t, d]);
            let (g16, g32) = halves(&dev, &data(n, 6), &[bs, t, d]);
            let (h016, h032) = halves(
                &dev,
                &data(bs * d, 7)
                    .iter()
                    .map(|v| v.abs() + 0.1)
                    .collect::<Vec<_>>(),
                &[bs, d],
            );
            for strategy in [
                ScanStrategy::Serial,
                ScanStrategy::Chunked,
                ScanStrategy::TimeParallel,
            ] {
                let plan = Scan {
                    strategy,
                    layout: ScanLayout::BatchFirst,
                    ..Scan::new(kind)
                };
                let what = format!("{kind:?} {strategy:?} ({bs}, {t}, {d})");
                let o16 = plan.forward(&a16, &b16, Some(&h016)).unwrap();
                let o32 = plan.forward(&a32, &b32, Some(&h032)).unwrap();
                assert_eq!(o16.h.dtype(), DType::F16);
                let v = |t: &Tensor| t.to_vec().unwrap();
                assert_close(&format!("{what} h"), &v(&o16.h), &v(&o32.h), 2e-3, 2e-3);
                assert_close(
                    &format!("{what} last"),
                    &v(&o16.last),
                    &v(&o32.last),
                    2e-3,
                    2e-3,
                );
                // The backward of both paths from the f16 path's outputs.
                let h32 = cast(&o16.h, DType::F32).unwrap();
                let g16r = plan
                    .backward([&a16, &b16, &o16.h], Some(&h016), Some(&g16), None)
                    .unwrap();
                let g32r = plan
                    .backward([&a32, &b32, &h32], Some(&h032), Some(&g32), None)
                    .unwrap();
                for (name, x, y) in [("da", &g16r.da, &g32r.da), ("db", &g16r.db, &g32r.db)] {
                    assert_close(&format!("{what} {name}"), &v(x), &v(y), 5e-3, 5e-3);
                }
            }
        }
    }
}

#[test]
fn fused_recurrences_run_their_forward_with_f16_storage() {
    let Some(dev) = f16_device() else { return };
    let (t, b, i, h) = (20, 3, 5, 9);
    for cell in Cell::ALL {
        let gh = cell.gates() * h;
        let (wi16, wi32) = halves(&dev, &data(gh * i, 10), &[gh, i]);
        // Small recurrent weights keep the ReLU RNN inside f16's range.
        let small: Vec<f32> = data(gh * h, 11).iter().map(|v| 0.3 * v).collect();
        let (wh16, wh32) = halves(&dev, &small, &[gh, h]);
        let (bi16, bi32) = halves(&dev, &data(gh, 12), &[gh]);
        let (x16, x32) = halves(&dev, &data(t * b * i, 13), &[t, b, i]);
        let (h016, h032) = halves(&dev, &data(b * h, 14), &[b, h]);
        let w16 = RnnWeights {
            w_ih: &wi16,
            w_hh: &wh16,
            b_ih: Some(&bi16),
            b_hh: None,
        };
        let w32 = RnnWeights {
            w_ih: &wi32,
            w_hh: &wh32,
            b_ih: Some(&bi32),
            b_hh: None,
        };
        for strategy in [
            RnnStrategy::Stepped,
            RnnStrategy::SteppedNarrow,
            RnnStrategy::Persistent,
        ] {
            for reverse in [false, true] {
                let run = RnnRun {
                    reverse,
                    strategy,
                    ..RnnRun::new(cell)
                };
                let o16 = rnn_forward_run(&run, &w16, &x16, Some(&h016), None).unwrap();
                let o32 = rnn_forward_run(&run, &w32, &x32, Some(&h032), None).unwrap();
                assert_eq!(o16.output.dtype(), DType::F16);
                let what = format!("{cell:?} {strategy:?} reverse={reverse}");
                let v = |t: &Tensor| t.to_vec().unwrap();
                // h is stored (rounded) every step and read back by the next.
                assert_close(&what, &v(&o16.output), &v(&o32.output), 1e-2, 1e-2);
                assert_close(&what, &v(&o16.h_n), &v(&o32.h_n), 1e-2, 1e-2);
            }
        }
        let train = RnnRun {
            train: true,
            ..RnnRun::new(cell)
        };
        let err = rnn_forward_run(&train, &w16, &x16, None, None).unwrap_err();
        assert!(matches!(err, Error::DType { op: "rnn", .. }), "{err}");
    }
}

/// Without SHADER_F16 an f16 tensor cannot reach a kernel: a typed error
/// naming the op, and `half_dtype` says to stay in f32.
#[test]
fn without_shader_f16_f16_storage_is_a_typed_error() {
    let Some(_) = common::device() else { return };
    let options = recur_gpu::DeviceOptions {
        features: recur_gpu::OPTIONAL_FEATURES - wgpu::Features::SHADER_F16,
        ..recur_gpu::DeviceOptions::from_env().unwrap()
    };
    let dev = pollster::block_on(Device::with_options(options)).unwrap();
    assert_eq!(dev.half_dtype(), DType::F32);
    // Casts pack f16 pairs in u32 words, so they work everywhere.
    let (a16, _) = halves(&dev, &data(12, 1), &[3, 4]);
    let err = Gemm::default()
        .run(&a16, &a16.reshape(&[4, 3]).unwrap(), None)
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::DType {
                op: "gemm",
                dtype: DType::F16,
                ..
            }
        ),
        "{err}"
    );
    let seq = cast(&upload(&dev, &data(24, 2), &[2, 3, 4]), DType::F16).unwrap();
    let err = Scan::new(ScanKind::Linear)
        .forward(&seq, &seq, None)
        .unwrap_err();
    assert!(matches!(err, Error::DType { op: "scan", .. }), "{err}");
}
