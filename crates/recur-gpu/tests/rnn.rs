//! Fused recurrent layers (one layer-direction) against the f64 CPU
//! reference: outputs, final states and every gradient, for every cell, both
//! directions, with and without initial states, on odd sizes.

mod common;

use common::{assert_close, data, upload};
use recur_gpu::ops::rnn::rnn_forward;
use recur_gpu::ops::rnn::{rnn_backward, rnn_forward_run, Cell, RnnRun, RnnStrategy, RnnWeights};
use recur_gpu::reference::{
    rnn_backward as ref_backward, rnn_forward as ref_forward, RnnDims, RnnParams,
};
use recur_gpu::{Error, Tensor};

fn f64s(x: &[f32]) -> Vec<f64> {
    x.iter().map(|&v| v as f64).collect()
}

fn f32s(x: &[f64]) -> Vec<f32> {
    x.iter().map(|&v| v as f32).collect()
}

fn params(cell: Cell, d: RnnDims, seed: u64) -> RnnParams {
    let gh = cell.gates() * d.h;
    let s = 1.0 / (d.h as f64).sqrt();
    let scaled = |n, seed| {
        data(n, seed)
            .iter()
            .map(|&v| v as f64 * s)
            .collect::<Vec<_>>()
    };
    RnnParams {
        w_ih: scaled(gh * d.i, seed),
        w_hh: scaled(gh * d.h, seed + 1),
        b_ih: scaled(gh, seed + 2),
        b_hh: scaled(gh, seed + 3),
    }
}

fn check(cell: Cell, d: RnnDims, reverse: bool, with_state: bool, seed: u64) {
    for strategy in [
        RnnStrategy::Stepped,
        RnnStrategy::SteppedNarrow,
        RnnStrategy::Persistent,
    ] {
        check_with(strategy, cell, d, reverse, with_state, seed);
    }
}

fn check_with(
    strategy: RnnStrategy,
    cell: Cell,
    d: RnnDims,
    reverse: bool,
    with_state: bool,
    seed: u64,
) {
    let Some(dev) = common::device() else { return };
    let p = params(cell, d, seed);
    let gh = cell.gates() * d.h;
    let x = data(d.t * d.b * d.i, seed + 10);
    let h0 = if with_state {
        data(d.b * d.h, seed + 11)
    } else {
        vec![0.0; d.b * d.h]
    };
    let c0 = if with_state {
        data(d.b * d.h, seed + 12)
    } else {
        vec![0.0; d.b * d.h]
    };
    let dout = data(d.t * d.b * d.h, seed + 13);
    let dh_n = data(d.b * d.h, seed + 14);
    let dc_n = data(d.b * d.h, seed + 15);
    let lstm = cell == Cell::Lstm;

    let want = ref_forward(cell, d, &p, &f64s(&x), &f64s(&h0), &f64s(&c0), reverse);
    let dc_ref: Vec<f64> = f64s(if lstm { &dc_n } else { &[] })
        .iter()
        .copied()
        .chain(std::iter::repeat(0.0))
        .take(d.b * d.h)
        .collect();
    let upstream = [&f64s(&dout)[..], &f64s(&dh_n), &dc_ref];
    let grads = ref_backward(cell, d, &p, &f64s(&x), &want, upstream);

    let t = |v: &[f64], shape: &[usize]| upload(&dev, &f32s(v), shape);
    let (w_ih, w_hh, b_ih, b_hh) = (
        t(&p.w_ih, &[gh, d.i]),
        t(&p.w_hh, &[gh, d.h]),
        t(&p.b_ih, &[gh]),
        t(&p.b_hh, &[gh]),
    );
    let w = RnnWeights {
        w_ih: &w_ih,
        w_hh: &w_hh,
        b_ih: Some(&b_ih),
        b_hh: Some(&b_hh),
    };
    let xt = upload(&dev, &x, &[d.t, d.b, d.i]);
    let h0t = upload(&dev, &h0, &[d.b, d.h]);
    let c0t = upload(&dev, &c0, &[d.b, d.h]);
    let run = RnnRun {
        reverse,
        train: true,
        strategy,
        ..RnnRun::new(cell)
    };
    let out = rnn_forward_run(
        &run,
        &w,
        &xt,
        with_state.then_some(&h0t),
        (with_state && lstm).then_some(&c0t),
    )
    .unwrap();
    let what = format!("{strategy:?} {cell:?} {d:?} reverse={reverse} state={with_state}");
    let tol = (2e-5, 2e-4);
    assert_close(
        &format!("{what} output"),
        &out.output.to_vec().unwrap(),
        &f32s(&want.out),
        tol.0,
        tol.1,
    );
    assert_close(
        &format!("{what} h_n"),
        &out.h_n.to_vec().unwrap(),
        &f32s(&want.h_n),
        tol.0,
        tol.1,
    );
    if lstm {
        assert_close(
            &format!("{what} c_n"),
            &out.c_n.as_ref().unwrap().to_vec().unwrap(),
            &f32s(&want.c_n),
            tol.0,
            tol.1,
        );
    }
    let dct = upload(&dev, &dc_n, &[d.b, d.h]);
    let g = rnn_backward(
        &w,
        out.cache.as_ref().unwrap(),
        &upload(&dev, &dout, &[d.t, d.b, d.h]),
        Some(&upload(&dev, &dh_n, &[d.b, d.h])),
        lstm.then_some(&dct),
    )
    .unwrap();
    let tol = (1e-4, 1e-3);
    assert_close(
        &format!("{what} dx"),
        &g.dx.to_vec().unwrap(),
        &f32s(&grads.dx),
        tol.0,
        tol.1,
    );
    assert_close(
        &format!("{what} dh0"),
        &g.dh0.to_vec().unwrap(),
        &f32s(&grads.dh0),
        tol.0,
        tol.1,
    );
    if lstm {
        assert_close(
            &format!("{what} dc0"),
            &g.dc0.as_ref().unwrap().to_vec().unwrap(),
            &f32s(&grads.dc0),
            tol.0,
            tol.1,
        );
    }
    assert_close(
        &format!("{what} dw_ih"),
        &g.dw_ih.to_vec().unwrap(),
        &f32s(&grads.params.w_ih),
        tol.0,
        tol.1,
    );
    assert_close(
        &format!("{what} dw_hh"),
        &g.dw_hh.to_vec().unwrap(),
        &f32s(&grads.params.w_hh),
        tol.0,
        tol.1,
    );
    assert_close(
        &format!("{what} db_ih"),
        &g.db_ih.unwrap().to_vec().unwrap(),
        &f32s(&grads.params.b_ih),
        tol.0,
        tol.1,
    );
    assert_close(
        &format!("{what} db_hh"),
        &g.db_hh.unwrap().to_vec().unwrap(),
        &f32s(&grads.params.b_hh),
        tol.0,
        tol.1,
    );
}

#[test]
fn rnn_cells_match_reference_forward_and_backward() {
    let d = RnnDims {
        t: 11,
        b: 3,
        i: 7,
        h: 19,
    };
    for (n, cell) in Cell::ALL.into_iter().enumerate() {
        for reverse in [false, true] {
            check(cell, d, reverse, reverse, 100 * n as u64);
        }
    }
}

#[test]
fn rnn_single_step_and_batch_one() {
    for cell in Cell::ALL {
        check(
            cell,
            RnnDims {
                t: 1,
                b: 1,
                i: 5,
                h: 9,
            },
            false,
            true,
            7,
        );
        check(
            cell,
            RnnDims {
                t: 4,
                b: 6,
                i: 1,
                h: 70,
            },
            true,
            false,
            8,
        );
    }
}

#[test]
fn rnn_bad_input_is_a_typed_error() {
    let Some(dev) = common::device() else { return };
    let z = |s: &[usize]| Tensor::zeros(&dev, s).unwrap();
    let (w_ih, w_hh) = (z(&[4 * 5, 3]), z(&[4 * 5, 5]));
    let w = RnnWeights {
        w_ih: &w_ih,
        w_hh: &w_hh,
        b_ih: None,
        b_hh: None,
    };
    let err = |r: recur_gpu::Result<_>| match r {
        Err(Error::ShapeMismatch { op, .. }) => assert!(op.starts_with("rnn")),
        Err(e) => panic!("wrong error {e}"),
        Ok(_) => panic!("accepted bad input"),
    };
    err(rnn_forward(Cell::Lstm, &w, &z(&[2, 3, 4]), None, None, false, false).map(drop)); // input size
    err(rnn_forward(Cell::Lstm, &w, &z(&[0, 3, 3]), None, None, false, false).map(drop)); // empty sequence
    err(rnn_forward(Cell::Lstm, &w, &z(&[3, 3]), None, None, false, false).map(drop)); // rank
    err(rnn_forward(Cell::Gru, &w, &z(&[2, 3, 3]), None, None, false, false).map(drop)); // gate count
    err(rnn_forward(
        Cell::Lstm,
        &w,
        &z(&[2, 3, 3]),
        Some(&z(&[2, 5])),
        None,
        false,
        false,
    )
    .map(drop)); // h0 shape
    let ids = Tensor::from_slice_u32(&dev, &[0; 18], &[2, 3, 3]).unwrap();
    assert!(matches!(
        rnn_forward(Cell::Lstm, &w, &ids, None, None, false, false),
        Err(Error::DType { .. })
    ));
}

/// A sequence run in time chunks (as rnn_forward does when a tensor would
/// exceed one storage binding) gives the whole sequence's outputs, final
/// states and every gradient, for every cell and both directions.
#[test]
fn rnn_time_chunks_match_the_whole_sequence() {
    let Some(dev) = common::device() else { return };
    let d = RnnDims {
        t: 11,
        b: 3,
        i: 5,
        h: 7,
    };
    for (k, cell) in Cell::ALL.into_iter().enumerate() {
        let p = params(cell, d, 100 + k as u64);
        let gh = cell.gates() * d.h;
        let t = |v: &[f64], shape: &[usize]| upload(&dev, &f32s(v), shape);
        let (w_ih, w_hh, b_ih, b_hh) = (
            t(&p.w_ih, &[gh, d.i]),
            t(&p.w_hh, &[gh, d.h]),
            t(&p.b_ih, &[gh]),
            t(&p.b_hh, &[gh]),
        );
        let w = RnnWeights {
            w_ih: &w_ih,
            w_hh: &w_hh,
            b_ih: Some(&b_ih),
            b_hh: Some(&b_hh),
        };
        let lstm = cell == Cell::Lstm;
        let x = upload(&dev, &data(d.t * d.b * d.i, 1), &[d.t, d.b, d.i]);
        let h0 = upload(&dev, &data(d.b * d.h, 2), &[d.b, d.h]);
        let c0 = upload(&dev, &data(d.b * d.h, 3), &[d.b, d.h]);
        let dout = upload(&dev, &data(d.t * d.b * d.h, 4), &[d.t, d.b, d.h]);
        let dh_n = upload(&dev, &data(d.b * d.h, 5), &[d.b, d.h]);
        let dc_n = upload(&dev, &data(d.b * d.h, 6), &[d.b, d.h]);
        for reverse in [false, true] {
            let c0r = lstm.then_some(&c0);
            let dcr = lstm.then_some(&dc_n);
            let whole = rnn_forward(cell, &w, &x, Some(&h0), c0r, reverse, true).unwrap();
            let run = RnnRun {
                reverse,
                train: true,
                max_steps: Some(4),
                ..RnnRun::new(cell)
            };
            let parts = rnn_forward_run(&run, &w, &x, Some(&h0), c0r).unwrap();
            let what = format!("{cell:?} reverse={reverse}");
            let v = |t: &Tensor| t.to_vec().unwrap();
            assert_close(&what, &v(&parts.output), &v(&whole.output), 1e-6, 1e-6);
            assert_close(&what, &v(&parts.h_n), &v(&whole.h_n), 1e-6, 1e-6);
            if lstm {
                let (a, b) = (parts.c_n.as_ref().unwrap(), whole.c_n.as_ref().unwrap());
                assert_close(&what, &v(a), &v(b), 1e-6, 1e-6);
            }
            let gw =
                rnn_backward(&w, whole.cache.as_ref().unwrap(), &dout, Some(&dh_n), dcr).unwrap();
            let gp =
                rnn_backward(&w, parts.cache.as_ref().unwrap(), &dout, Some(&dh_n), dcr).unwrap();
            for (name, a, b) in [
                ("dx", &gp.dx, &gw.dx),
                ("dh0", &gp.dh0, &gw.dh0),
                ("dw_ih", &gp.dw_ih, &gw.dw_ih),
                ("dw_hh", &gp.dw_hh, &gw.dw_hh),
                (
                    "db_ih",
                    gp.db_ih.as_ref().unwrap(),
                    gw.db_ih.as_ref().unwrap(),
                ),
                (
                    "db_hh",
                    gp.db_hh.as_ref().unwrap(),
                    gw.db_hh.as_ref().unwrap(),
                ),
            ] {
                assert_close(&format!("{what} {name}"), &v(a), &v(b), 1e-5, 1e-5);
            }
            if lstm {
                let (a, b) = (gp.dc0.as_ref().unwrap(), gw.dc0.as_ref().unwrap());
                assert_close(&format!("{what} dc0"), &v(a), &v(b), 1e-5, 1e-5);
            }
        }
    }
}
