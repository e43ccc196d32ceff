//! The causal depthwise convolution against the f64 reference on odd shapes
//! (widths 1..5, lengths shorter and longer than the width, with and without
//! a state and a bias), every gradient, and the carried state: two calls
//! with the state between them equal one call over the whole sequence.

mod common;

use common::{assert_close, data, upload};
use recur_gpu::ops::conv1d::{causal_conv1d, causal_conv1d_backward, causal_conv1d_state};
use recur_gpu::{reference, Error, Tensor};

fn f64s(x: &[f32]) -> Vec<f64> {
    x.iter().map(|&v| v as f64).collect()
}

fn f32s(x: &[f64]) -> Vec<f32> {
    x.iter().map(|&v| v as f32).collect()
}

#[test]
fn causal_conv1d_matches_the_reference() {
    let Some(dev) = common::device() else { return };
    for (b, l, d, w) in [
        (1, 1, 1, 1),
        (2, 3, 5, 4),
        (3, 70, 67, 4),
        (1, 200, 3, 5),
        (2, 2, 130, 3),
    ] {
        let (x, wt, bias, st, dy) = (
            data(b * l * d, 1),
            data(d * w, 2),
            data(d, 3),
            data(b * (w - 1) * d, 4),
            data(b * l * d, 5),
        );
        let xt = upload(&dev, &x, &[b, l, d]);
        let wtt = upload(&dev, &wt, &[d, w]);
        let bt = upload(&dev, &bias, &[d]);
        let stt = Tensor::from_slice(&dev, &st, &[b, w - 1, d]).unwrap();
        let dyt = upload(&dev, &dy, &[b, l, d]);
        for (with_bias, with_state) in [(false, false), (true, false), (false, true), (true, true)]
        {
            let what = format!("({b}, {l}, {d}) W={w} bias={with_bias} state={with_state}");
            let (sb, ss) = (with_bias.then_some(&bt), with_state.then_some(&stt));
            let y = causal_conv1d(&xt, &wtt, sb, ss).unwrap();
            let want = reference::causal_conv1d(
                (b, l, d, w),
                &f64s(&x),
                &f64s(&wt),
                with_bias.then(|| f64s(&bias)).as_deref(),
                with_state.then(|| f64s(&st)).as_deref(),
            );
            assert_close(
                &format!("{what} y"),
                &y.to_vec().unwrap(),
                &f32s(&want),
                1e-5,
                1e-5,
            );
            let g = causal_conv1d_backward(&xt, &wtt, with_bias, ss, &dyt).unwrap();
            let (dx, dw, db, dst) = reference::causal_conv1d_backward(
                (b, l, d, w),
                &f64s(&x),
                &f64s(&wt),
                with_state.then(|| f64s(&st)).as_deref(),
                &f64s(&dy),
            );
            let v = |t: &Tensor| t.to_vec().unwrap();
            assert_close(&format!("{what} dx"), &v(&g.dx), &f32s(&dx), 1e-5, 1e-5);
            assert_close(
                &format!("{what} dw"),
                &v(&g.dweight),
                &f32s(&dw),
                1e-4,
                1e-4,
            );
            assert_eq!(g.dbias.is_some(), with_bias);
            if let Some(gb) = &g.dbias {
                assert_close(&format!("{what} dbias"), &v(gb), &f32s(&db), 1e-4, 1e-4);
            }
            assert_eq!(g.dstate.is_some(), with_state);
            if let Some(gs) = &g.dstate {
                assert_close(&format!("{what} dstate"), &v(gs), &f32s(&dst), 1e-5, 1e-5);
            }
        }
    }
}

/// Running a sequence in two parts, the second from the state the first
/// left, gives the same outputs as one call: the streaming contract.
#[test]
fn the_carried_state_continues_the_convolution() {
    let Some(dev) = common::device() else { return };
    let (b, d, w) = (2, 7, 4);
    for (l1, l2) in [(10, 6), (2, 9), (1, 1), (3, 3)] {
        let x = data(b * (l1 + l2) * d, 8);
        let xt = upload(&dev, &x, &[b, l1 + l2, d]);
        let wt = upload(&dev, &data(d * w, 9), &[d, w]);
        let bias = upload(&dev, &data(d, 10), &[d]);
        let whole = causal_conv1d(&xt, &wt, Some(&bias), None)
            .unwrap()
            .to_vec()
            .unwrap();
        let first = recur_gpu::ops::layout::slice(&xt, 1, 0, l1).unwrap();
        let second = recur_gpu::ops::layout::slice(&xt, 1, l1, l2).unwrap();
        let y1 = causal_conv1d(&first, &wt, Some(&bias), None).unwrap();
        let state = causal_conv1d_state(&first, None, w).unwrap();
        assert_eq!(state.shape(), &[b, w - 1, d]);
        let y2 = causal_conv1d(&second, &wt, Some(&bias), Some(&state)).unwrap();
        let joined = recur_gpu::ops::layout::concat(&[&y1, &y2], 1).unwrap();
        assert_close(
            &format!("{l1}+{l2}"),
            &joined.to_vec().unwrap(),
            &whole,
            1e-6,
            1e-6,
        );
        // The state after both parts is the last W−1 inputs either way.
        let after = causal_conv1d_state(&second, Some(&state), w).unwrap();
        let direct = causal_conv1d_state(&xt, None, w).unwrap();
        assert_eq!(after.to_vec().unwrap(), direct.to_vec().unwrap());
    }
}

#[test]
fn bad_conv1d_input_is_a_typed_error() {
    let Some(dev) = common::device() else { return };
    let t = |s: &[usize]| Tensor::zeros(&dev, s).unwrap();
    let (x, w) = (t(&[2, 5, 3]), t(&[3, 4]));
    assert!(causal_conv1d(&x, &w, None, None).is_ok());
    for r in [
        causal_conv1d(&x, &t(&[4, 4]), None, None),
        causal_conv1d(&x, &w, Some(&t(&[2])), None),
        causal_conv1d(&x, &w, None, Some(&t(&[2, 4, 3]))),
        causal_conv1d(&t(&[2, 0, 3]), &w, None, None),
        causal_conv1d(&t(&[5, 3]), &w, None, None),
    ] {
        assert!(
            matches!(
                r,
                Err(Error::ShapeMismatch {
                    op: "causal_conv1d",
                    ..
                })
            ),
            "{r:?}"
        );
    }
}
