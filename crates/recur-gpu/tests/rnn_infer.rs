//! The one-dispatch inference step of every cell against the f64 CPU
//! reference run for one step: odd sizes, several steps carrying the state,
//! masked rows that keep their state, f16 weights where the adapter has
//! them, and typed errors for bad input.

mod common;

use common::{assert_close, data, upload};
use recur_gpu::ops::rnn::{
    rnn_infer_step, rnn_infer_step_into, Cell, RnnStepWeights, RnnWeights, StepIo,
};
use recur_gpu::reference::{rnn_forward as ref_forward, RnnDims, RnnParams};
use recur_gpu::{DType, Device, Error, Tensor};

fn f64s(x: &[f32]) -> Vec<f64> {
    x.iter().map(|&v| v as f64).collect()
}

/// Weights as f32 host data (rounded once, so that the GPU and the
/// reference see the same values).
fn weights(cell: Cell, i: usize, h: usize, seed: u64) -> [Vec<f32>; 4] {
    let gh = cell.gates() * h;
    let s = 1.0 / (h as f32).sqrt();
    let scaled = |n, seed| data(n, seed).iter().map(|&v| v * s).collect::<Vec<_>>();
    [
        scaled(gh * i, seed),
        scaled(gh * h, seed + 1),
        scaled(gh, seed + 2),
        scaled(gh, seed + 3),
    ]
}

/// Steps `steps` tokens of batch `b` with a mask that changes per step and
/// compares h (and c) with the reference after every step.
fn check(dev: &Device, cell: Cell, (b, i, h): (usize, usize, usize), dtype: DType, tol: f32) {
    let [w_ih, w_hh, b_ih, b_hh] = weights(cell, i, h, 7);
    let gh = cell.gates() * h;
    let t = |x: &[f32], s: &[usize]| upload(dev, x, s);
    let (tw_ih, tw_hh, tb_ih, tb_hh) = (
        t(&w_ih, &[gh, i]),
        t(&w_hh, &[gh, h]),
        t(&b_ih, &[gh]),
        t(&b_hh, &[gh]),
    );
    let rw = RnnWeights {
        w_ih: &tw_ih,
        w_hh: &tw_hh,
        b_ih: Some(&tb_ih),
        b_hh: Some(&tb_hh),
    };
    let w = RnnStepWeights::new(cell, &rw, dtype).unwrap();
    assert_eq!((w.input(), w.hidden(), w.dtype()), (i, h, dtype));
    // The reference sees what the kernel sees (f16-rounded weights).
    let seen = |x: &[f32]| -> Vec<f64> {
        if dtype == DType::F16 {
            x.iter().map(|&v| half_round(v)).collect()
        } else {
            f64s(x)
        }
    };
    let p = RnnParams {
        w_ih: seen(&w_ih),
        w_hh: seen(&w_hh),
        b_ih: seen(&b_ih),
        b_hh: seen(&b_hh),
    };
    let lstm = cell == Cell::Lstm;
    let mut hs = data(b * h, 11);
    let mut cs = if lstm {
        data(b * h, 12)
    } else {
        vec![0.0; b * h]
    };
    let mut h_t = t(&hs, &[b, h]);
    let c_t = lstm.then(|| t(&cs, &[b, h]));
    let d = RnnDims { t: 1, b, i, h };
    for step in 0..4u64 {
        let x = data(b * i, 20 + step);
        let mask: Vec<f32> = (0..b)
            .map(|r| u8::from(!(r as u64 + step).is_multiple_of(3)) as f32)
            .collect();
        let masked = step > 0;
        let m_t = t(&mask, &[b]);
        let out = rnn_infer_step(
            &w,
            &t(&x, &[b, i]),
            &h_t,
            c_t.as_ref(),
            masked.then_some(&m_t),
        )
        .unwrap();
        let want = ref_forward(cell, d, &p, &f64s(&x), &f64s(&hs), &f64s(&cs), false);
        for r in 0..b {
            if !masked || mask[r] != 0.0 {
                for j in 0..h {
                    hs[r * h + j] = want.h_n[r * h + j] as f32;
                    cs[r * h + j] = want.c_n[r * h + j] as f32;
                }
            }
        }
        let what = format!("{cell:?} b{b} i{i} h{h} {dtype:?} step {step}");
        assert_close(&format!("{what}: h"), &out.to_vec().unwrap(), &hs, tol, tol);
        if let Some(c) = &c_t {
            assert_close(&format!("{what}: c"), &c.to_vec().unwrap(), &cs, tol, tol);
        }
        h_t = out;
    }
}

/// f32 → f16 → f64, round to nearest even (the GPU's cast).
fn half_round(v: f32) -> f64 {
    let bits = v.to_bits();
    let exp = ((bits >> 23) & 0xff) as i32 - 127;
    if !(-14..=15).contains(&exp) {
        return v as f64; // the test's weights are well inside f16's normal range
    }
    let keep = 13; // 23 - 10 mantissa bits dropped
    let mant = bits & ((1 << keep) - 1);
    let half = 1 << (keep - 1);
    let mut r = bits >> keep;
    if mant > half || (mant == half && r & 1 == 1) {
        r += 1;
    }
    f32::from_bits(r << keep) as f64
}

#[test]
fn every_cell_steps_like_the_reference_with_masks() {
    let Some(dev) = common::device() else { return };
    for cell in Cell::ALL {
        for dims in [(1, 1, 1), (5, 3, 7), (9, 13, 66), (3, 70, 5)] {
            check(&dev, cell, dims, DType::F32, 2e-5);
        }
    }
}

#[test]
fn f16_weights_step_like_the_reference() {
    let Some(dev) = common::device() else { return };
    if !dev.info().has(recur_gpu::wgpu::Features::SHADER_F16) {
        eprintln!("no SHADER_F16 on this adapter: f16 weights not tested");
        return;
    }
    for cell in Cell::ALL {
        check(&dev, cell, (5, 9, 33), DType::F16, 2e-4);
    }
}

#[test]
fn bad_input_is_a_typed_error() {
    let Some(dev) = common::device() else { return };
    let (i, h) = (3, 4);
    let [w_ih, w_hh, ..] = weights(Cell::Lstm, i, h, 1);
    let (tw_ih, tw_hh) = (
        upload(&dev, &w_ih, &[4 * h, i]),
        upload(&dev, &w_hh, &[4 * h, h]),
    );
    let rw = RnnWeights {
        w_ih: &tw_ih,
        w_hh: &tw_hh,
        b_ih: None,
        b_hh: None,
    };
    // An LSTM's weights for a GRU.
    assert!(matches!(
        RnnStepWeights::new(Cell::Gru, &rw, DType::F32),
        Err(Error::ShapeMismatch { .. })
    ));
    let w = RnnStepWeights::new(Cell::Lstm, &rw, DType::F32).unwrap();
    let z = |s: &[usize]| Tensor::zeros(&dev, s).unwrap();
    let (x, hh, c) = (z(&[2, i]), z(&[2, h]), z(&[2, h]));
    for (what, r) in [
        (
            "wrong input width",
            rnn_infer_step(&w, &z(&[2, i + 1]), &hh, Some(&c), None),
        ),
        (
            "wrong h",
            rnn_infer_step(&w, &x, &z(&[3, h]), Some(&c), None),
        ),
        ("no c for an LSTM", rnn_infer_step(&w, &x, &hh, None, None)),
        (
            "wrong mask",
            rnn_infer_step(&w, &x, &hh, Some(&c), Some(&z(&[3]))),
        ),
        (
            "empty batch",
            rnn_infer_step(&w, &z(&[0, i]), &z(&[0, h]), Some(&z(&[0, h])), None),
        ),
        (
            "rank-3 x",
            rnn_infer_step(&w, &z(&[1, 2, i]), &hh, Some(&c), None),
        ),
    ] {
        let e = r.expect_err(what);
        assert!(e.to_string().contains("rnn_infer_step"), "{what}: {e}");
    }
}

#[test]
fn a_layer_of_a_stacked_state_steps_where_it_lies() {
    let Some(dev) = common::device() else { return };
    let (b, i, h) = (3, 5, 6);
    for cell in [Cell::Lstm, Cell::Gru] {
        let [w_ih, w_hh, b_ih, b_hh] = weights(cell, i, h, 3);
        let gh = cell.gates() * h;
        let t = |x: &[f32], s: &[usize]| upload(&dev, x, s);
        let (a, bb, c, d) = (
            t(&w_ih, &[gh, i]),
            t(&w_hh, &[gh, h]),
            t(&b_ih, &[gh]),
            t(&b_hh, &[gh]),
        );
        let rw = RnnWeights {
            w_ih: &a,
            w_hh: &bb,
            b_ih: Some(&c),
            b_hh: Some(&d),
        };
        let w = RnnStepWeights::new(cell, &rw, DType::F32).unwrap();
        let lstm = cell == Cell::Lstm;
        // Layer 1 of (2, B, ·) tensors against the same step on (B, ·) ones.
        let (x2, h2, c2) = (data(2 * b * i, 1), data(2 * b * h, 2), data(2 * b * h, 3));
        let (xs, hs, cs) = (&x2[b * i..], &h2[b * h..], &c2[b * h..]);
        let c_alone = lstm.then(|| t(cs, &[b, h]));
        let want =
            rnn_infer_step(&w, &t(xs, &[b, i]), &t(hs, &[b, h]), c_alone.as_ref(), None).unwrap();
        let (c_big, out) = (t(&c2, &[2, b, h]), Tensor::zeros(&dev, &[2, b, h]).unwrap());
        let h_in = t(&h2, &[2, b, h]);
        let io = StepIo {
            batch: b,
            x: &t(&x2, &[2, b, i]),
            x_offset: b * i,
            h_in: &h_in,
            h_out: &out,
            c: lstm.then_some(&c_big),
            h_offset: b * h,
            mask: None,
        };
        rnn_infer_step_into(&w, &io).unwrap();
        let got = out.to_vec().unwrap();
        assert_eq!(&got[..b * h], &vec![0.0; b * h][..], "layer 0 untouched");
        assert_close(
            "layer 1 h",
            &got[b * h..],
            &want.to_vec().unwrap(),
            1e-6,
            1e-6,
        );
        if let Some(ca) = c_alone {
            let cb = c_big.to_vec().unwrap();
            assert_eq!(&cb[..b * h], &c2[..b * h], "layer 0's c untouched");
            assert_close("layer 1 c", &cb[b * h..], &ca.to_vec().unwrap(), 1e-6, 1e-6);
        }
        // Past the end, or h_out = h_in: typed errors.
        let past = StepIo {
            h_offset: b * h + 1,
            ..io
        };
        assert!(rnn_infer_step_into(&w, &past).is_err());
        let alias = StepIo { h_out: &h_in, ..io };
        let e = rnn_infer_step_into(&w, &alias).unwrap_err();
        assert!(e.to_string().contains("different buffers"), "{e}");
    }
}
