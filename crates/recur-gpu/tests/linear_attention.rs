//! The chunked linear-attention engine against the f64 plain recurrence:
//! every decay kind, forward and every gradient, on odd shapes (T = 1, T not
//! a multiple of the chunk, d_k ≠ d_v, widths over a workgroup's block),
//! both layouts, with and without an initial state and a final-state
//! gradient; strong decays; the recurrent form equal to the chunked one.

mod common;

use common::{assert_close, upload};
use recur_gpu::ops::linear_attention::{
    ChunkedAttention, Decay, DecayKind, LaGrads, LaInputs, LaLayout,
};
use recur_gpu::reference::{self, LaDecay, LaDims, LaRefInputs};
use recur_gpu::{Device, Error, Rng, Tensor};

fn gen(n: usize, seed: u64, lo: f64, hi: f64) -> Vec<f64> {
    let mut r = Rng::new(seed);
    (0..n)
        .map(|_| (lo + (hi - lo) * r.next_f32() as f64) as f32 as f64)
        .collect()
}

fn f32s(x: &[f64]) -> Vec<f32> {
    x.iter().map(|&v| v as f32).collect()
}

/// Heads-first (B, H, T, w) data as (B, T, H, w).
fn to_bthd(x: &[f64], d: LaDims, w: usize) -> Vec<f64> {
    let mut y = vec![0.0; x.len()];
    for b in 0..d.batch {
        for h in 0..d.heads {
            for t in 0..d.len {
                for i in 0..w {
                    y[((b * d.len + t) * d.heads + h) * w + i] =
                        x[((b * d.heads + h) * d.len + t) * w + i];
                }
            }
        }
    }
    y
}

/// One case's host values (heads first).
struct Case {
    dims: LaDims,
    kind: DecayKind,
    q: Vec<f64>,
    k: Vec<f64>,
    v: Vec<f64>,
    g: Vec<f64>,
    h0: Vec<f64>,
    dout: Vec<f64>,
    dlast: Vec<f64>,
}

impl Case {
    fn new(dims: LaDims, kind: DecayKind, seed: u64, strength: f64) -> Self {
        let LaDims {
            batch: b,
            heads: h,
            len: t,
            dk,
            dv,
        } = dims;
        let g = match kind {
            DecayKind::None => vec![],
            DecayKind::Head => (0..h)
                .map(|i| (1.0 - 2f64.powi(-5 - i as i32)).ln() as f32 as f64)
                .collect(),
            DecayKind::Scalar => gen(b * h * t, seed + 3, -strength, 0.0),
            DecayKind::Vector => gen(b * h * t * dk, seed + 3, -strength, 0.0),
        };
        Self {
            dims,
            kind,
            q: gen(b * h * t * dk, seed, -1.0, 1.0),
            k: gen(b * h * t * dk, seed + 1, -1.0, 1.0),
            v: gen(b * h * t * dv, seed + 2, -1.0, 1.0),
            g,
            h0: gen(b * h * dk * dv, seed + 4, -1.0, 1.0),
            dout: gen(b * h * t * dv, seed + 5, -1.0, 1.0),
            dlast: gen(b * h * dk * dv, seed + 6, -1.0, 1.0),
        }
    }

    fn reference(&self, h0: bool) -> LaRefInputs<'_> {
        LaRefInputs {
            dims: self.dims,
            q: &self.q,
            k: &self.k,
            v: &self.v,
            decay: match self.kind {
                DecayKind::None => LaDecay::None,
                DecayKind::Head => LaDecay::Head(&self.g),
                DecayKind::Scalar => LaDecay::Scalar(&self.g),
                DecayKind::Vector => LaDecay::Vector(&self.g),
            },
            h0: h0.then_some(&self.h0[..]),
        }
    }
}

/// GPU tensors of a case in a layout.
struct Gpu {
    q: Tensor,
    k: Tensor,
    v: Tensor,
    g: Option<Tensor>,
    h0: Tensor,
    dout: Tensor,
    dlast: Tensor,
    layout: LaLayout,
    dims: LaDims,
}

impl Gpu {
    fn new(dev: &Device, c: &Case, layout: LaLayout) -> Self {
        let d = c.dims;
        let place = |x: &[f64], w: usize| -> (Vec<f32>, Vec<usize>) {
            match layout {
                LaLayout::Bhtd => (f32s(x), vec![d.batch, d.heads, d.len, w]),
                LaLayout::Bthd => (f32s(&to_bthd(x, d, w)), vec![d.batch, d.len, d.heads, w]),
            }
        };
        let up = |x: &[f64], w: usize| {
            let (data, shape) = place(x, w);
            upload(dev, &data, &shape)
        };
        let g = match c.kind {
            DecayKind::None => None,
            DecayKind::Head => Some(upload(dev, &f32s(&c.g), &[d.heads])),
            DecayKind::Scalar => {
                let (data, shape) = place(&c.g, 1);
                Some(upload(dev, &data, &shape[..3]))
            }
            DecayKind::Vector => Some(up(&c.g, d.dk)),
        };
        let state = [d.batch, d.heads, d.dk, d.dv];
        Self {
            q: up(&c.q, d.dk),
            k: up(&c.k, d.dk),
            v: up(&c.v, d.dv),
            g,
            h0: upload(dev, &f32s(&c.h0), &state),
            dout: up(&c.dout, d.dv),
            dlast: upload(dev, &f32s(&c.dlast), &state),
            layout,
            dims: d,
        }
    }

    fn inputs(&self, kind: DecayKind, h0: bool) -> LaInputs<'_> {
        let g = self.g.as_ref();
        LaInputs {
            q: &self.q,
            k: &self.k,
            v: &self.v,
            decay: match kind {
                DecayKind::None => Decay::None,
                DecayKind::Head => Decay::Head(g.unwrap()),
                DecayKind::Scalar => Decay::Scalar(g.unwrap()),
                DecayKind::Vector => Decay::Vector(g.unwrap()),
            },
            h0: h0.then_some(&self.h0),
        }
    }

    /// A GPU tensor back in heads-first order.
    fn heads_first(&self, t: &Tensor, w: usize) -> Vec<f32> {
        let x = t.to_vec().unwrap();
        if self.layout == LaLayout::Bhtd {
            return x;
        }
        let d = self.dims;
        let mut y = vec![0.0; x.len()];
        for b in 0..d.batch {
            for h in 0..d.heads {
                for s in 0..d.len {
                    for i in 0..w {
                        y[((b * d.heads + h) * d.len + s) * w + i] =
                            x[((b * d.len + s) * d.heads + h) * w + i];
                    }
                }
            }
        }
        y
    }
}

/// Which form runs a case: the chunked one with a chunk length, or the
/// recurrent one.
#[derive(Clone, Copy, Debug)]
enum Form {
    Chunked(usize),
    Recurrent,
}

/// Runs one case forward and backward on the GPU and checks every result.
fn check(dev: &Device, c: &Case, form: Form, layout: LaLayout, h0: bool, dlast: bool, tol: f32) {
    let d = c.dims;
    let what = format!(
        "{:?} {d:?} {form:?} {layout:?} h0 {h0} dlast {dlast}",
        c.kind
    );
    let r = c.reference(h0);
    let (out, last) = reference::linear_attention(&r);
    let grads = reference::linear_attention_backward(&r, &c.dout, dlast.then_some(&c.dlast[..]));
    let g = Gpu::new(dev, c, layout);
    let x = g.inputs(c.kind, h0);
    let dl = dlast.then_some(&g.dlast);
    let ((o, l), gr): ((Tensor, Tensor), LaGrads) = match form {
        Form::Chunked(chunk) => {
            let la = ChunkedAttention { chunk, layout };
            let fwd = la.forward(&x).unwrap();
            let gr = la.backward(&x, &fwd, &g.dout, dl).unwrap();
            ((fwd.out, fwd.last_state), gr)
        }
        Form::Recurrent => {
            let la = ChunkedAttention {
                layout,
                ..Default::default()
            };
            let (o, l) = la.recurrent_from_start(&x).unwrap();
            let gr = la.recurrent_backward(&x, &l, &g.dout, dl).unwrap();
            ((o, l), gr)
        }
    };
    let close = |name: &str, got: Vec<f32>, want: &[f64]| {
        assert_close(&format!("{what}: {name}"), &got, &f32s(want), tol, tol);
    };
    close("out", g.heads_first(&o, d.dv), &out);
    close("last state", l.to_vec().unwrap(), &last);
    close("dq", g.heads_first(&gr.dq, d.dk), &grads.dq);
    close("dk", g.heads_first(&gr.dk, d.dk), &grads.dk);
    close("dv", g.heads_first(&gr.dv, d.dv), &grads.dv);
    match (c.kind, &gr.ddecay, &grads.ddecay) {
        (DecayKind::Scalar, Some(dg), Some(want)) => close("dlog α", g.heads_first(dg, 1), want),
        (DecayKind::Vector, Some(dg), Some(want)) => close("dlog α", g.heads_first(dg, d.dk), want),
        (DecayKind::None | DecayKind::Head, None, None) => {}
        (k, got, _) => panic!("{what}: {k:?} decay gradient present: {}", got.is_some()),
    }
    assert_eq!(gr.dh0.is_some(), h0, "{what}: dh0 iff h0");
    if let Some(dh0) = gr.dh0 {
        close("dh0", dh0.to_vec().unwrap(), &grads.dh0);
    }
}

fn dims(batch: usize, heads: usize, len: usize, dk: usize, dv: usize) -> LaDims {
    LaDims {
        batch,
        heads,
        len,
        dk,
        dv,
    }
}

#[test]
fn every_decay_matches_the_recurrence_on_odd_shapes() {
    let Some(dev) = common::device() else { return };
    for (i, kind) in DecayKind::ALL.into_iter().enumerate() {
        let seed = 100 * i as u64;
        // T = 1; d_k ≠ d_v.
        let c = Case::new(dims(2, 3, 1, 5, 3), kind, seed, 0.5);
        check(
            &dev,
            &c,
            Form::Chunked(64),
            LaLayout::Bhtd,
            true,
            true,
            1e-4,
        );
        // T not a multiple of the chunk, several chunks, both layouts.
        let c = Case::new(dims(2, 2, 37, 7, 9), kind, seed + 10, 0.5);
        for layout in [LaLayout::Bhtd, LaLayout::Bthd] {
            check(&dev, &c, Form::Chunked(16), layout, true, true, 1e-4);
        }
        check(
            &dev,
            &c,
            Form::Chunked(16),
            LaLayout::Bhtd,
            false,
            false,
            1e-4,
        );
        // Widths over a workgroup's 64-column block, one long chunk.
        let c = Case::new(dims(1, 1, 70, 66, 67), kind, seed + 20, 0.1);
        check(
            &dev,
            &c,
            Form::Chunked(64),
            LaLayout::Bthd,
            true,
            false,
            2e-4,
        );
        // Eight column blocks a workgroup, chunks of 64: the subgroup paths
        // (every lane on one row block), a partial last chunk. (A scalar
        // decay's gradient sums ~10⁴ f32 products here: 1e-3.)
        let c = Case::new(dims(1, 2, 150, 61, 64), kind, seed + 30, 0.1);
        check(
            &dev,
            &c,
            Form::Chunked(64),
            LaLayout::Bthd,
            true,
            true,
            1e-3,
        );
    }
}

#[test]
fn the_recurrent_form_and_its_backward_match_the_reference() {
    let Some(dev) = common::device() else { return };
    for (i, kind) in DecayKind::ALL.into_iter().enumerate() {
        let seed = 50 + 100 * i as u64;
        let c = Case::new(dims(2, 3, 1, 5, 3), kind, seed, 0.5);
        check(&dev, &c, Form::Recurrent, LaLayout::Bhtd, true, true, 1e-4);
        let c = Case::new(dims(2, 2, 37, 7, 9), kind, seed + 10, 0.5);
        check(&dev, &c, Form::Recurrent, LaLayout::Bthd, true, true, 1e-4);
        check(
            &dev,
            &c,
            Form::Recurrent,
            LaLayout::Bhtd,
            false,
            false,
            1e-4,
        );
        // Widths over a workgroup's 64 rows or columns.
        let c = Case::new(dims(1, 1, 20, 66, 67), kind, seed + 20, 0.1);
        check(&dev, &c, Form::Recurrent, LaLayout::Bthd, true, false, 2e-4);
    }
}

#[test]
fn strong_decays_over_long_chunks_stay_finite_and_exact() {
    let Some(dev) = common::device() else { return };
    for kind in [DecayKind::Scalar, DecayKind::Vector] {
        // log α down to −20 per step: e^{b_C} underflows within a chunk.
        let c = Case::new(dims(1, 2, 100, 8, 4), kind, 7, 20.0);
        check(
            &dev,
            &c,
            Form::Chunked(64),
            LaLayout::Bhtd,
            true,
            true,
            1e-4,
        );
        check(&dev, &c, Form::Recurrent, LaLayout::Bhtd, true, true, 1e-4);
    }
    // log α in [−1.06, 0]: a full chunk's b_C ≈ −34 (where the kernels
    // switch from plain products of chunk-relative operands to factored
    // ones), the partial last chunk's ≈ −12: both in one call, with the
    // subgroup paths' widths.
    let c = Case::new(dims(1, 2, 150, 64, 64), DecayKind::Vector, 9, 1.06);
    check(
        &dev,
        &c,
        Form::Chunked(64),
        LaLayout::Bhtd,
        true,
        true,
        1e-3,
    );
}

#[test]
fn the_recurrent_form_equals_the_chunked_form_over_150_steps() {
    let Some(dev) = common::device() else { return };
    for kind in DecayKind::ALL {
        let c = Case::new(dims(2, 2, 150, 16, 12), kind, 11, 0.2);
        let g = Gpu::new(&dev, &c, LaLayout::Bthd);
        let x = g.inputs(kind, true);
        let la = ChunkedAttention {
            chunk: 32,
            layout: LaLayout::Bthd,
        };
        let fwd = la.forward(&x).unwrap();
        let (out, last) = la.recurrent_from_start(&x).unwrap();
        let what = format!("{kind:?} recurrent vs chunked");
        let (want, want_last) = (fwd.out.to_vec().unwrap(), fwd.last_state.to_vec().unwrap());
        assert_close(
            &format!("{what}: out"),
            &out.to_vec().unwrap(),
            &want,
            2e-4,
            2e-4,
        );
        assert_close(
            &format!("{what}: state"),
            &last.to_vec().unwrap(),
            &want_last,
            2e-4,
            2e-4,
        );
    }
}

#[test]
fn one_step_at_a_time_equals_the_whole_sequence() {
    let Some(dev) = common::device() else { return };
    let d = dims(1, 2, 9, 4, 3);
    for kind in DecayKind::ALL {
        let c = Case::new(d, kind, 21, 0.5);
        let g = Gpu::new(&dev, &c, LaLayout::Bthd);
        let x = g.inputs(kind, false);
        let la = ChunkedAttention {
            chunk: 64,
            layout: LaLayout::Bthd,
        };
        let (whole, _) = la.recurrent_from_start(&x).unwrap();
        let state = Tensor::zeros(&dev, &[1, 2, 4, 3]).unwrap();
        let step = |t: &Tensor, w: usize| -> Tensor {
            recur_gpu::ops::layout::slice(t, 1, 0, 1)
                .unwrap()
                .reshape(&[1, 1, 2, w])
                .unwrap()
        };
        let mut outs = Vec::new();
        for s in 0..d.len {
            let at =
                |t: &Tensor, w: usize| step(&recur_gpu::ops::layout::slice(t, 1, s, 1).unwrap(), w);
            let (q, k, v) = (at(&g.q, 4), at(&g.k, 4), at(&g.v, 3));
            let gs = match kind {
                DecayKind::Scalar => {
                    Some(recur_gpu::ops::layout::slice(g.g.as_ref().unwrap(), 1, s, 1).unwrap())
                }
                DecayKind::Vector => Some(at(g.g.as_ref().unwrap(), 4)),
                _ => g.g.clone(),
            };
            let xs = LaInputs {
                q: &q,
                k: &k,
                v: &v,
                decay: match kind {
                    DecayKind::None => Decay::None,
                    DecayKind::Head => Decay::Head(gs.as_ref().unwrap()),
                    DecayKind::Scalar => Decay::Scalar(gs.as_ref().unwrap()),
                    DecayKind::Vector => Decay::Vector(gs.as_ref().unwrap()),
                },
                h0: None,
            };
            outs.extend(la.recurrent(&xs, &state).unwrap().to_vec().unwrap());
        }
        assert_close(
            &format!("{kind:?} stepwise"),
            &outs,
            &whole.to_vec().unwrap(),
            1e-5,
            1e-5,
        );
    }
}

#[test]
fn bad_inputs_are_typed_errors_naming_the_op() {
    let Some(dev) = common::device() else { return };
    let t = |shape: &[usize]| Tensor::zeros(&dev, shape).unwrap();
    let (q, v) = (t(&[1, 2, 5, 4]), t(&[1, 2, 5, 3]));
    let la = ChunkedAttention::default();
    let ok = LaInputs {
        q: &q,
        k: &q,
        v: &v,
        decay: Decay::None,
        h0: None,
    };
    assert!(la.forward(&ok).is_ok());
    let bad_v = t(&[1, 2, 6, 3]);
    let bad_g = t(&[3]);
    let bad_h0 = t(&[1, 2, 3, 4]);
    let empty = t(&[1, 2, 0, 4]);
    let cases: Vec<LaInputs> = vec![
        LaInputs { v: &bad_v, ..ok },
        LaInputs {
            decay: Decay::Head(&bad_g),
            ..ok
        },
        LaInputs {
            decay: Decay::Scalar(&v),
            ..ok
        },
        LaInputs {
            decay: Decay::Vector(&v),
            ..ok
        },
        LaInputs {
            h0: Some(&bad_h0),
            ..ok
        },
        LaInputs {
            q: &empty,
            k: &empty,
            ..ok
        },
        LaInputs { q: &v, ..ok },
    ];
    for (i, x) in cases.iter().enumerate() {
        match la.forward(x) {
            Err(Error::ShapeMismatch { op, .. }) => assert_eq!(op, "linear_attention", "case {i}"),
            other => panic!("case {i}: {other:?}"),
        }
    }
    let zero = ChunkedAttention { chunk: 0, ..la };
    assert!(matches!(
        zero.forward(&ok),
        Err(Error::InvalidArgument { .. })
    ));
    let fwd = la.forward(&ok).unwrap();
    let bad_dout = t(&[1, 2, 5, 4]);
    match la.backward(&ok, &fwd, &bad_dout, None) {
        Err(Error::ShapeMismatch { op, .. }) => assert_eq!(op, "linear_attention_backward"),
        other => panic!("{other:?}"),
    }
    let state = t(&[1, 2, 4, 4]);
    assert!(la.recurrent(&ok, &state).is_err());
    match la.recurrent_backward(&ok, &state, &fwd.out, None) {
        Err(Error::ShapeMismatch { op, .. }) => {
            assert_eq!(op, "linear_attention_recurrent_backward")
        }
        other => panic!("{other:?}"),
    }
}
