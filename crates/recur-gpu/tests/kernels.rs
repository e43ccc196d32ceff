//! GPU vs CPU reference for every core kernel, on odd shapes (none a
//! multiple of a workgroup or tile size) and at every variant.

mod common;

use common::{assert_close, data, upload};
use recur_gpu::ops::elementwise::{self, BinaryOp};
use recur_gpu::ops::gemm::{Gemm, GemmKernel};
use recur_gpu::ops::reduce::{self, Reduce};
use recur_gpu::ops::{embedding, layout, softmax, Activation};
use recur_gpu::{reference, DType, Tensor};

#[test]
fn gemm_matches_reference_on_odd_shapes_and_every_variant() {
    let Some(dev) = common::device() else { return };
    let shapes = [
        (1, 1, 1, 1),
        (1, 33, 65, 17),
        (1, 1000, 3, 7),
        (3, 5, 70, 66),
        (2, 65, 1, 129),
        // Several 128x128 tiles each way.
        (1, 150, 260, 19),
    ];
    let acts = [Activation::Identity, Activation::Tanh, Activation::Relu];
    let mut case = 0u64;
    // Coop rounds its operands to f16 where the device has tensor cores
    // (f16 tolerance) and falls back to the f32 kernels elsewhere (f32's).
    let coop = dev.info().coop_f16;
    for &(z, m, n, k) in &shapes {
        for kernel in GemmKernel::ALL.into_iter().chain([GemmKernel::Coop]) {
            for bits in 0..16u32 {
                case += 1;
                let cfg = Gemm {
                    trans_a: bits & 1 != 0,
                    trans_b: bits & 2 != 0,
                    alpha: if bits & 4 != 0 { 0.5 } else { 1.0 },
                    beta: if bits & 8 != 0 { -1.5 } else { 0.0 },
                    activation: acts[(bits % 3) as usize],
                    kernel,
                };
                let shared_b = bits % 5 == 0 && z > 1;
                let a_shape = if cfg.trans_a { [z, k, m] } else { [z, m, k] };
                let b_shape = if cfg.trans_b { [n, k] } else { [k, n] };
                let a_host = data(z * m * k, case);
                let b_host = data(if shared_b { 1 } else { z } * k * n, case + 1000);
                let bias_host = data(n, case + 2000);
                let c_host = data(z * m * n, case + 3000);
                let a = upload(&dev, &a_host, &a_shape);
                let b = if shared_b {
                    upload(&dev, &b_host, &b_shape)
                } else {
                    upload(&dev, &b_host, &[z, b_shape[0], b_shape[1]])
                };
                let c = upload(&dev, &c_host, &[z, m, n]);
                let bias = (bits & 4 != 0).then(|| upload(&dev, &bias_host, &[n]));
                cfg.run_into(&a, &b, bias.as_ref(), &c).unwrap();
                let s = cfg.shape(&a, &b).unwrap();
                let mut want = c_host.clone();
                reference::gemm(
                    &cfg,
                    &s,
                    &a_host,
                    &b_host,
                    bias.is_some().then_some(&bias_host[..]),
                    &mut want,
                );
                let what =
                    format!("gemm {kernel:?} z{z} m{m} n{n} k{k} {cfg:?} shared_b={shared_b}");
                let tol = if kernel == GemmKernel::Coop && coop {
                    2e-3 * (k as f32).sqrt()
                } else {
                    1e-4
                };
                assert_close(&what, &c.to_vec().unwrap(), &want, tol, tol);
            }
        }
    }
}

#[test]
fn gemm_without_optional_features_takes_the_fallback_paths() {
    let Some(_) = common::device() else { return };
    let options = recur_gpu::DeviceOptions {
        features: recur_gpu::wgpu::Features::empty(),
        ..recur_gpu::DeviceOptions::from_env().unwrap()
    };
    let dev = pollster::block_on(recur_gpu::Device::with_options(options)).unwrap();
    assert!(!dev.info().has(recur_gpu::wgpu::Features::SUBGROUP));
    for (trans_a, trans_b) in [(false, false), (true, true)] {
        let (m, n, k) = (70, 9, 21);
        let cfg = Gemm {
            trans_a,
            trans_b,
            kernel: GemmKernel::Blocked,
            ..Gemm::default()
        };
        let a_host = data(m * k, 40);
        let b_host = data(k * n, 41);
        let a = upload(&dev, &a_host, &if trans_a { [k, m] } else { [m, k] });
        let b = upload(&dev, &b_host, &if trans_b { [n, k] } else { [k, n] });
        let c = cfg.run(&a, &b, None).unwrap();
        let mut want = vec![0.0; m * n];
        reference::gemm(
            &cfg,
            &cfg.shape(&a, &b).unwrap(),
            &a_host,
            &b_host,
            None,
            &mut want,
        );
        assert_close(
            "gemm without subgroups",
            &c.to_vec().unwrap(),
            &want,
            1e-4,
            1e-4,
        );
    }
}

#[test]
fn gemm_blocked_agrees_with_naive_on_ragged_blocks() {
    // Lanes whose columns run past N share a workgroup with lanes that do
    // not; the subgroup path must still see every lane (a bug once).
    let Some(dev) = common::device() else { return };
    for n in [9, 17, 19, 23] {
        for trans_a in [false, true] {
            let (m, k) = (19, 33);
            let a = upload(
                &dev,
                &data(m * k, n as u64),
                &if trans_a { [k, m] } else { [m, k] },
            );
            let b = upload(&dev, &data(k * n, 99), &[k, n]);
            let run = |kernel| {
                Gemm {
                    trans_a,
                    kernel,
                    ..Gemm::default()
                }
                .run(&a, &b, None)
                .unwrap()
                .to_vec()
                .unwrap()
            };
            assert_close(
                &format!("blocked n={n} trans_a={trans_a}"),
                &run(GemmKernel::Blocked),
                &run(GemmKernel::Naive),
                1e-5,
                1e-5,
            );
        }
    }
}

#[test]
fn gemm_2d_and_linear_helpers() {
    let Some(dev) = common::device() else { return };
    let (m, k, n) = (9, 13, 6);
    let x = data(m * k, 1);
    let w = data(n * k, 2);
    let bias = data(n, 3);
    let y = recur_gpu::ops::gemm::linear(
        &upload(&dev, &x, &[m, k]),
        &upload(&dev, &w, &[n, k]),
        Some(&upload(&dev, &bias, &[n])),
    )
    .unwrap();
    assert_eq!(y.shape(), &[m, n]);
    let cfg = Gemm {
        trans_b: true,
        ..Gemm::default()
    };
    let s = recur_gpu::ops::gemm::GemmShape {
        z: 1,
        m,
        n,
        k,
        shared_b: true,
    };
    let mut want = vec![0.0; m * n];
    reference::gemm(&cfg, &s, &x, &w, Some(&bias), &mut want);
    assert_close("linear", &y.to_vec().unwrap(), &want, 1e-5, 1e-5);
}

#[test]
fn activations_and_their_backward_match_reference() {
    let Some(dev) = common::device() else { return };
    let n = 1037;
    let mut x = data(n, 7).iter().map(|v| v * 6.0).collect::<Vec<_>>();
    x[0] = 80.0; // large inputs must stay finite
    x[1] = -80.0;
    let dy = data(n, 8);
    let xt = upload(&dev, &x, &[n]);
    let dyt = upload(&dev, &dy, &[n]);
    for act in Activation::ALL {
        let input: Vec<f32> = if act == Activation::Log {
            x.iter().map(|v| v.abs() + 0.1).collect()
        } else {
            x.clone()
        };
        let (input, dy) = if act == Activation::Exp {
            (input[2..].to_vec(), dy[2..].to_vec())
        } else {
            (input, dy.clone())
        };
        let it = upload(&dev, &input, &[input.len()]);
        let y = elementwise::unary(&it, act, 1.0, 0.0)
            .unwrap()
            .to_vec()
            .unwrap();
        assert_close(
            &format!("{act:?}"),
            &y,
            &reference::unary(&input, act, 1.0, 0.0),
            1e-5,
            1e-5,
        );
        let g = elementwise::activation_backward(&it, &upload(&dev, &dy, &[dy.len()]), act)
            .unwrap()
            .to_vec()
            .unwrap();
        assert_close(
            &format!("{act:?} backward"),
            &g,
            &reference::unary_backward(&input, &dy, act),
            1e-5,
            1e-5,
        );
    }
    let y = elementwise::unary(&xt, Activation::Sigmoid, -0.5, 0.25)
        .unwrap()
        .to_vec()
        .unwrap();
    assert_close(
        "sigmoid(-0.5x+0.25)",
        &y,
        &reference::unary(&x, Activation::Sigmoid, -0.5, 0.25),
        1e-6,
        1e-5,
    );
    let s = elementwise::scale(&dyt, 3.0).unwrap().to_vec().unwrap();
    assert_close(
        "scale",
        &s,
        &dy.iter().map(|v| v * 3.0).collect::<Vec<_>>(),
        1e-6,
        0.0,
    );
}

#[test]
fn binary_ops_broadcast_trailing_dims() {
    let Some(dev) = common::device() else { return };
    let a = data(3 * 5 * 7, 1);
    let b_full = data(3 * 5 * 7, 2);
    let b_row = data(7, 3).iter().map(|v| v + 2.0).collect::<Vec<_>>();
    let at = upload(&dev, &a, &[3, 5, 7]);
    for op in [BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div] {
        for (b, shape) in [(&b_row, vec![7]), (&b_full, vec![3, 5, 7])] {
            let b = if op == BinaryOp::Div {
                b.iter().map(|v| v.abs() + 0.5).collect()
            } else {
                b.clone()
            };
            let got = elementwise::binary(&at, &upload(&dev, &b, &shape), op, 0.75)
                .unwrap()
                .to_vec()
                .unwrap();
            assert_close(
                &format!("{op:?} {shape:?}"),
                &got,
                &reference::binary(&a, &b, op, 0.75),
                1e-6,
                1e-6,
            );
        }
    }
    let add = elementwise::add(&at, &upload(&dev, &b_full, &[3, 5, 7]))
        .unwrap()
        .to_vec()
        .unwrap();
    assert_close(
        "add",
        &add,
        &reference::binary(&a, &b_full, BinaryOp::Add, 1.0),
        1e-6,
        0.0,
    );
}

#[test]
fn fill_zeros_full_and_f16_round_trip() {
    let Some(dev) = common::device() else { return };
    assert!(Tensor::zeros(&dev, &[5, 3])
        .unwrap()
        .to_vec()
        .unwrap()
        .iter()
        .all(|&v| v == 0.0));
    assert!(Tensor::full(&dev, &[301], -2.5)
        .unwrap()
        .to_vec()
        .unwrap()
        .iter()
        .all(|&v| v == -2.5));
    let x = data(333, 4);
    let h = elementwise::cast(&upload(&dev, &x, &[333]), DType::F16).unwrap();
    assert_eq!(h.dtype(), DType::F16);
    let want: Vec<half::f16> = x.iter().map(|&v| half::f16::from_f32(v)).collect();
    assert_eq!(h.to_vec_f16().unwrap(), want);
    let back = elementwise::cast(&h, DType::F32).unwrap().to_vec().unwrap();
    assert_close(
        "f16 round trip",
        &back,
        &want.iter().map(|v| v.to_f32()).collect::<Vec<_>>(),
        0.0,
        0.0,
    );
    let up = Tensor::from_slice_f16(&dev, &want, &[333]).unwrap();
    assert_close("f16 upload", &up.to_vec().unwrap(), &back, 0.0, 0.0);
}

#[test]
fn reductions_over_every_axis() {
    let Some(dev) = common::device() else { return };
    let shape = [3, 301, 5];
    let x = data(3 * 301 * 5, 9);
    let xt = upload(&dev, &x, &shape);
    for axis in 0..3 {
        for op in [Reduce::Sum, Reduce::Mean, Reduce::Max, Reduce::SumSquares] {
            let outer: usize = shape[..axis].iter().product();
            let inner: usize = shape[axis + 1..].iter().product();
            let got = reduce::reduce(&xt, axis, op).unwrap();
            let mut want_shape = shape.to_vec();
            want_shape.remove(axis);
            assert_eq!(got.shape(), &want_shape[..]);
            let want = reference::reduce(&x, outer, shape[axis], inner, op);
            assert_close(
                &format!("{op:?} axis {axis}"),
                &got.to_vec().unwrap(),
                &want,
                1e-4,
                1e-5,
            );
        }
    }
}

#[test]
fn global_l2_norm_spans_tensors() {
    let Some(dev) = common::device() else { return };
    let a = data(70_001, 1);
    let b = data(3, 2);
    let norm =
        reduce::global_l2_norm(&[&upload(&dev, &a, &[70_001]), &upload(&dev, &b, &[3])]).unwrap();
    let want = a
        .iter()
        .chain(&b)
        .map(|&v| v as f64 * v as f64)
        .sum::<f64>()
        .sqrt() as f32;
    assert_close("l2 norm", &[norm.item().unwrap()], &[want], 0.0, 1e-5);
}

#[test]
fn softmax_and_log_softmax_rows() {
    let Some(dev) = common::device() else { return };
    for (rows, cols) in [(1, 1), (7, 3), (5, 1000), (2, 257)] {
        let x: Vec<f32> = data(rows * cols, 11).iter().map(|v| v * 30.0).collect();
        let xt = upload(&dev, &x, &[rows, cols]);
        let got = softmax::softmax(&xt).unwrap().to_vec().unwrap();
        assert_close(
            "softmax",
            &got,
            &reference::softmax(&x, cols, false),
            1e-6,
            1e-4,
        );
        let got = softmax::log_softmax(&xt).unwrap().to_vec().unwrap();
        assert_close(
            "log_softmax",
            &got,
            &reference::softmax(&x, cols, true),
            1e-4,
            1e-5,
        );
    }
}

#[test]
fn cross_entropy_loss_and_gradient_with_ignore_index() {
    let Some(dev) = common::device() else { return };
    let (rows, cols) = (37, 65);
    let x: Vec<f32> = data(rows * cols, 12).iter().map(|v| v * 4.0).collect();
    let targets: Vec<u32> = (0..rows as u32)
        .map(|i| {
            if i % 5 == 0 {
                7
            } else {
                (i * 13) % cols as u32
            }
        })
        .collect();
    let xt = upload(&dev, &x, &[rows, cols]);
    let tt = Tensor::from_slice_u32(&dev, &targets, &[rows]).unwrap();
    for (ignore, mean) in [(None, true), (Some(7), true), (Some(7), false)] {
        let red = if mean {
            softmax::LossReduction::Mean
        } else {
            softmax::LossReduction::Sum
        };
        let ce = softmax::cross_entropy(&xt, &tt, ignore, red).unwrap();
        let (loss, grad) = reference::cross_entropy(&x, cols, &targets, ignore, mean);
        assert_close("ce loss", &[ce.loss.item().unwrap()], &[loss], 1e-5, 1e-5);
        assert_close("ce grad", &ce.grad.to_vec().unwrap(), &grad, 1e-6, 1e-4);
    }
    // A class target past the logits (and not the ignore index) is an error
    // at the next sync, and the row does not count.
    // On a device of its own: the shared one's next sync may be another
    // test's, which would receive this error instead.
    let dev = recur_gpu::Device::new().unwrap();
    let xt = upload(&dev, &x, &[rows, cols]);
    let mut bad = targets.clone();
    bad[2] = cols as u32 + 3;
    let bt = Tensor::from_slice_u32(&dev, &bad, &[rows]).unwrap();
    let ce = softmax::cross_entropy(&xt, &bt, Some(7), softmax::LossReduction::Sum).unwrap();
    let err = dev.sync().unwrap_err();
    assert!(
        matches!(err, recur_gpu::Error::IndexOutOfRange { op: "cross_entropy", index, bound }
            if index == cols as u32 + 3 && bound == cols as u32),
        "{err}"
    );
    let mut skipped = bad.clone();
    skipped[2] = 7;
    let (loss, _) = reference::cross_entropy(&x, cols, &skipped, Some(7), false);
    assert_close(
        "ce loss without the bad row",
        &[ce.loss.item().unwrap()],
        &[loss],
        1e-5,
        1e-5,
    );
}

#[test]
fn embedding_gather_and_scatter_add() {
    let Some(dev) = common::device() else { return };
    let (v, d) = (11, 37);
    let table = data(v * d, 13);
    let tt = upload(&dev, &table, &[v, d]);
    // An id past the table: a zero row, and the next readback names it
    // (then the error is cleared).
    let bad = Tensor::from_slice_u32(&dev, &[3, 12, 0], &[3]).unwrap();
    let out = embedding::embedding(&tt, &bad).unwrap();
    let err = out.to_vec().unwrap_err();
    assert!(
        matches!(
            err,
            recur_gpu::Error::IndexOutOfRange {
                op: "embedding",
                index: 12,
                bound: 11
            }
        ),
        "{err}"
    );
    assert_eq!(&out.to_vec().unwrap()[d..2 * d], &vec![0.0; d][..]);
    let ids: Vec<u32> = vec![3, 0, 10, 3, 3, 7, 10, 1, 10];
    let idt = Tensor::from_slice_u32(&dev, &ids, &[3, 3]).unwrap();
    let out = embedding::embedding(&tt, &idt).unwrap();
    assert_eq!(out.shape(), &[3, 3, d]);
    assert_close(
        "gather",
        &out.to_vec().unwrap(),
        &reference::embedding(&table, d, &ids),
        0.0,
        0.0,
    );
    let dout = data(ids.len() * d, 14);
    let g0 = data(v * d, 15);
    let grad = upload(&dev, &g0, &[v, d]);
    embedding::embedding_backward_into(&grad, &idt, &upload(&dev, &dout, &[3, 3, d])).unwrap();
    let mut want = g0.clone();
    reference::embedding_backward(&mut want, d, &ids, &dout);
    assert_close("scatter_add", &grad.to_vec().unwrap(), &want, 1e-6, 1e-6);
}

#[test]
fn transpose_slice_concat() {
    let Some(dev) = common::device() else { return };
    for (z, r, c) in [(1, 1, 1), (2, 17, 33), (3, 5, 64)] {
        let x = data(z * r * c, 16);
        let y = layout::transpose(&upload(&dev, &x, &[z, r, c])).unwrap();
        assert_eq!(y.shape(), &[z, c, r]);
        assert_eq!(y.to_vec().unwrap(), reference::transpose(&x, z, r, c));
    }
    let x = data(4 * 9 * 5, 17);
    let xt = upload(&dev, &x, &[4, 9, 5]);
    let s = layout::slice(&xt, 1, 2, 6).unwrap();
    assert_eq!(s.shape(), &[4, 6, 5]);
    assert_eq!(s.to_vec().unwrap(), reference::slice(&x, 9, 5, 2, 6));
    let y = data(4 * 3 * 5, 18);
    let cat = layout::concat(&[&xt, &upload(&dev, &y, &[4, 3, 5])], 1).unwrap();
    assert_eq!(cat.shape(), &[4, 12, 5]);
    assert_eq!(
        cat.to_vec().unwrap(),
        reference::concat(&[(&x, 9), (&y, 3)], 4, 5)
    );
    let sw = layout::swap01(&xt).unwrap();
    assert_eq!(sw.shape(), &[9, 4, 5]);
    let sw_host = sw.to_vec().unwrap();
    for r in 0..4 {
        for c in 0..9 {
            assert_eq!(&sw_host[(c * 4 + r) * 5..][..5], &x[(r * 9 + c) * 5..][..5]);
        }
    }
    let last = layout::slice(&xt, 2, 4, 1).unwrap();
    assert_eq!(last.to_vec().unwrap(), reference::slice(&x, 5, 1, 4, 1));
}

#[test]
fn layer_norm_and_rms_norm_match_reference() {
    use recur_gpu::ops::norm::{self, Norm};
    let Some(dev) = common::device() else { return };
    let f64s = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<_>>();
    let f32s = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<_>>();
    let mut seed = 40;
    // Columns below, at and above the workgroup width; a rows axis of 1.
    for &(rows, cols) in &[(1, 1), (3, 7), (5, 64), (2, 131), (37, 19)] {
        for kind in [Norm::Layer, Norm::Rms] {
            for (affine, bias) in [(false, false), (true, false), (true, true)] {
                seed += 1;
                let x = data(rows * cols, seed);
                let g = data(cols, seed + 100);
                let b = data(cols, seed + 200);
                let dy = data(rows * cols, seed + 300);
                let xt = upload(&dev, &x, &[rows, cols]);
                let gt = upload(&dev, &g, &[cols]);
                let bt = upload(&dev, &b, &[cols]);
                let eps = 1e-5;
                let fw =
                    norm::norm(kind, &xt, affine.then_some(&gt), bias.then_some(&bt), eps).unwrap();
                let (gx, gg, gb) = (f64s(&x), f64s(&g), f64s(&b));
                let (want, _) = reference::norm(
                    kind,
                    &gx,
                    cols,
                    affine.then_some(&gg[..]),
                    bias.then_some(&gb[..]),
                    eps as f64,
                );
                let what = format!("{kind:?} {rows}x{cols} affine {affine} bias {bias}");
                assert_close(&what, &fw.y.to_vec().unwrap(), &f32s(&want), 1e-4, 1e-4);
                let bw = norm::norm_backward(
                    kind,
                    &xt,
                    affine.then_some(&gt),
                    bias,
                    &fw.stats,
                    &upload(&dev, &dy, &[rows, cols]),
                )
                .unwrap();
                let (dx, dg, db) = reference::norm_backward(
                    kind,
                    &gx,
                    cols,
                    affine.then_some(&gg[..]),
                    eps as f64,
                    &f64s(&dy),
                );
                assert_close(&what, &bw.dx.to_vec().unwrap(), &f32s(&dx), 1e-3, 1e-3);
                assert_eq!(bw.dgamma.is_some(), affine);
                assert_eq!(bw.dbeta.is_some(), bias);
                if let Some(t) = bw.dgamma {
                    assert_close(&what, &t.to_vec().unwrap(), &f32s(&dg), 1e-4, 1e-4);
                }
                if let Some(t) = bw.dbeta {
                    assert_close(&what, &t.to_vec().unwrap(), &f32s(&db), 1e-4, 1e-4);
                }
            }
        }
    }
    // Typed errors: a weight of the wrong length, a bad eps.
    let x = upload(&dev, &data(6, 1), &[2, 3]);
    let w = upload(&dev, &data(4, 2), &[4]);
    assert!(norm::norm(Norm::Layer, &x, Some(&w), None, 1e-5).is_err());
    assert!(norm::norm(Norm::Rms, &x, None, None, f32::NAN).is_err());
}

#[test]
fn dropout_masks_match_the_reference_and_keep_the_right_fraction() {
    let Some(dev) = common::device() else { return };
    let seed = 0x1234_5678_9abc_def0;
    let m = elementwise::dropout_mask(&dev, &[37, 29], 0.3, seed).unwrap();
    assert_eq!(
        m.to_vec().unwrap(),
        reference::dropout_mask(37 * 29, 0.3, seed)
    );
    let n = 200_003;
    let big = elementwise::dropout_mask(&dev, &[n], 0.25, 7)
        .unwrap()
        .to_vec()
        .unwrap();
    let kept = big.iter().filter(|&&v| v > 0.0).count() as f64 / n as f64;
    assert!((kept - 0.75).abs() < 0.005, "kept {kept}");
    assert!(big
        .iter()
        .all(|&v| v == 0.0 || (v - 1.0 / 0.75).abs() < 1e-6));
    let other = elementwise::dropout_mask(&dev, &[n], 0.25, 8)
        .unwrap()
        .to_vec()
        .unwrap();
    assert_ne!(big, other, "another seed, another mask");
    let ones = elementwise::dropout_mask(&dev, &[10], 0.0, 3)
        .unwrap()
        .to_vec()
        .unwrap();
    assert_eq!(ones, vec![1.0; 10]);
    assert!(elementwise::dropout_mask(&dev, &[4], 1.0, 3).is_err());
}
