//! Mamba's selective scan against the f64 reference: forward and every
//! gradient, on odd shapes (L = 1, 7, 1000, 4097; D and N not multiples of
//! the workgroup size; N = 1, 16, 64; grouped B and C), with and without
//! each optional input, for both chunk lengths tested, and at extreme decays.

mod common;

use common::{assert_close, upload};
use recur_gpu::ops::selective_scan::{SelectiveScan, SelectiveScanInputs, SsLayout};
use recur_gpu::reference::{self, SsDims, SsInputs};
use recur_gpu::{Device, Error, Rng, Tensor};

fn gen(n: usize, seed: u64, lo: f64, hi: f64) -> Vec<f64> {
    let mut r = Rng::new(seed);
    (0..n)
        .map(|_| lo + (hi - lo) * r.next_f32() as f64)
        .collect()
}

fn f32s(x: &[f64]) -> Vec<f32> {
    x.iter().map(|&v| v as f32).collect()
}

/// (B, D, L) data reordered as (B, L, D).
fn to_bld(x: &[f32], (b, d, l): (usize, usize, usize)) -> Vec<f32> {
    let mut y = vec![0.0; x.len()];
    for bi in 0..b {
        for di in 0..d {
            for t in 0..l {
                y[(bi * l + t) * d + di] = x[(bi * d + di) * l + t];
            }
        }
    }
    y
}

/// Host values of one case (f64, and rounded to f32 as the GPU sees them).
struct Case {
    dims: SsDims,
    grouped: bool,
    vals: [Vec<f64>; 9], // u, delta, A, B, C, D, z, delta_bias, h0
    /// |δ|, for runs without the softplus (δ must be positive to decay).
    delta_pos: Vec<f64>,
    dout: Vec<f64>,
    dlast: Vec<f64>,
}

impl Case {
    fn new(
        dims: SsDims,
        grouped: bool,
        seed: u64,
        (dlo, dhi): (f64, f64),
        (alo, ahi): (f64, f64),
    ) -> Self {
        let SsDims {
            batch: b,
            dim: d,
            len: l,
            nstate: n,
            groups: g,
        } = dims;
        let round = |v: Vec<f64>| v.iter().map(|&x| x as f32 as f64).collect::<Vec<_>>();
        let delta_pos = round(gen(b * d * l, seed + 1, dlo, dhi))
            .iter()
            .map(|x| x.abs())
            .collect();
        Self {
            delta_pos,
            dims,
            grouped,
            vals: [
                round(gen(b * d * l, seed, -1.0, 1.0)),
                round(gen(b * d * l, seed + 1, dlo, dhi)),
                round(gen(d * n, seed + 2, alo, ahi)),
                round(gen(b * g * n * l, seed + 3, -1.0, 1.0)),
                round(gen(b * g * n * l, seed + 4, -1.0, 1.0)),
                round(gen(d, seed + 5, 0.5, 1.5)),
                round(gen(b * d * l, seed + 6, -2.0, 2.0)),
                round(gen(d, seed + 7, -0.5, 0.5)),
                round(gen(b * d * n, seed + 8, -1.0, 1.0)),
            ],
            dout: round(gen(b * d * l, seed + 9, -1.0, 1.0)),
            dlast: round(gen(b * d * n, seed + 10, -1.0, 1.0)),
        }
    }

    fn reference(&self, all: bool, softplus: bool) -> SsInputs<'_> {
        let v = &self.vals;
        SsInputs {
            dims: self.dims,
            u: &v[0],
            delta: if softplus { &v[1] } else { &self.delta_pos },
            a: &v[2],
            b: &v[3],
            c: &v[4],
            d: all.then_some(&v[5][..]),
            z: all.then_some(&v[6][..]),
            delta_bias: all.then_some(&v[7][..]),
            h0: all.then_some(&v[8][..]),
            softplus,
        }
    }

    fn upload(&self, dev: &Device, layout: SsLayout) -> Vec<Tensor> {
        let SsDims {
            batch: b,
            dim: d,
            len: l,
            nstate: n,
            groups: g,
        } = self.dims;
        let bshape = if self.grouped {
            vec![b, g, n, l]
        } else {
            vec![b, n, l]
        };
        let shapes: [&[usize]; 9] = [
            &[b, d, l],
            &[b, d, l],
            &[d, n],
            &bshape,
            &bshape,
            &[d],
            &[b, d, l],
            &[d],
            &[b, d, n],
        ];
        let seq = |v: &[f64]| match layout {
            SsLayout::Bdl => upload(dev, &f32s(v), &[b, d, l]),
            SsLayout::Bld => upload(dev, &to_bld(&f32s(v), (b, d, l)), &[b, l, d]),
        };
        let mut t: Vec<Tensor> = self
            .vals
            .iter()
            .zip(shapes)
            .enumerate()
            .map(|(i, (v, s))| match i {
                0 | 1 | 6 => seq(v),
                _ => upload(dev, &f32s(v), s),
            })
            .collect();
        t.push(seq(&self.delta_pos));
        t.push(seq(&self.dout));
        t
    }
}

fn inputs(t: &[Tensor], all: bool, softplus: bool) -> SelectiveScanInputs<'_> {
    SelectiveScanInputs {
        u: &t[0],
        delta: if softplus { &t[1] } else { &t[9] },
        a: &t[2],
        b: &t[3],
        c: &t[4],
        d: all.then_some(&t[5]),
        z: all.then_some(&t[6]),
        delta_bias: all.then_some(&t[7]),
        h0: all.then_some(&t[8]),
    }
}

/// Runs one case through every setting and compares outputs and gradients.
fn check(dev: &Device, case: &Case, chunks: &[usize], tol: f32) {
    for layout in [SsLayout::Bdl, SsLayout::Bld] {
        check_layout(dev, case, chunks, tol, layout);
    }
}

fn check_layout(dev: &Device, case: &Case, chunks: &[usize], tol: f32, layout: SsLayout) {
    let tensors = case.upload(dev, layout);
    let dout = &tensors[10];
    let sd = (case.dims.batch, case.dims.dim, case.dims.len);
    // Sequence results read back in (B, D, L) order.
    let as_bdl = |t: &Tensor| -> Vec<f32> {
        let v = t.to_vec().unwrap();
        match layout {
            SsLayout::Bdl => v,
            SsLayout::Bld => {
                let (b, d, l) = sd;
                let mut y = vec![0.0; v.len()];
                for bi in 0..b {
                    for di in 0..d {
                        for ti in 0..l {
                            y[(bi * d + di) * l + ti] = v[(bi * l + ti) * d + di];
                        }
                    }
                }
                y
            }
        }
    };
    let dlast = upload(
        dev,
        &f32s(&case.dlast),
        &[case.dims.batch, case.dims.dim, case.dims.nstate],
    );
    for all in [false, true] {
        for softplus in [false, true] {
            let r = case.reference(all, softplus);
            let (want, want_last) = reference::selective_scan(&r);
            let dl = all.then_some(&case.dlast[..]);
            let g = reference::selective_scan_backward(&r, &case.dout, dl);
            for &chunk in chunks {
                let what = format!(
                    "{:?} grouped={} all={all} softplus={softplus} chunk={chunk} {layout:?}",
                    case.dims, case.grouped
                );
                let scan = SelectiveScan {
                    delta_softplus: softplus,
                    chunk,
                    layout,
                    // Both backward workgroup widths, alternating.
                    backward_channels: Some(if chunk == 16 { 64 } else { 8 }),
                };
                let x = inputs(&tensors, all, softplus);
                let fwd = scan.forward(&x).unwrap();
                let v = |t: &Tensor| t.to_vec().unwrap();
                assert_close(
                    &format!("{what} out"),
                    &as_bdl(&fwd.out),
                    &f32s(&want),
                    tol,
                    tol,
                );
                assert_close(
                    &format!("{what} last"),
                    &v(&fwd.last_state),
                    &f32s(&want_last),
                    tol,
                    tol,
                );
                let gr = scan
                    .backward(&x, &fwd, dout, all.then_some(&dlast))
                    .unwrap();
                let mut pairs = vec![
                    ("du", as_bdl(&gr.du), &g.du),
                    ("ddelta", as_bdl(&gr.ddelta), &g.ddelta),
                    ("dA", v(&gr.da), &g.da),
                    ("dB", v(&gr.db), &g.db),
                    ("dC", v(&gr.dc), &g.dc),
                ];
                if all {
                    pairs.push(("dD", v(gr.dd.as_ref().unwrap()), &g.dd));
                    pairs.push(("dz", as_bdl(gr.dz.as_ref().unwrap()), &g.dz));
                    let dbias = v(gr.ddelta_bias.as_ref().unwrap());
                    pairs.push(("ddelta_bias", dbias, &g.ddelta_bias));
                    pairs.push(("dh0", v(gr.dh0.as_ref().unwrap()), &g.dh0));
                } else {
                    assert!(gr.dd.is_none() && gr.dz.is_none() && gr.dh0.is_none());
                }
                for (name, got, want) in pairs {
                    assert!(
                        got.iter().all(|x| x.is_finite()),
                        "{what} {name}: not finite"
                    );
                    // Sums over L (dA, dD, dδ_bias) and over channels (dB, dC)
                    // accumulate more rounding than the per-element values.
                    let scale = want.iter().fold(1.0f64, |m, w| m.max(w.abs())) as f32;
                    assert_close(
                        &format!("{what} {name}"),
                        &got,
                        &f32s(want),
                        tol * scale,
                        10.0 * tol,
                    );
                }
            }
        }
    }
}

fn dims(batch: usize, dim: usize, len: usize, nstate: usize, groups: usize) -> SsDims {
    SsDims {
        batch,
        dim,
        len,
        nstate,
        groups,
    }
}

#[test]
fn selective_scan_matches_the_reference_on_odd_shapes() {
    let Some(dev) = common::device() else { return };
    let shapes = [
        (dims(1, 1, 1, 1, 1), false),
        (dims(2, 3, 7, 16, 1), false),
        (dims(2, 70, 33, 5, 1), false),
        (dims(1, 4, 1000, 3, 2), true),
        (dims(2, 6, 19, 64, 3), true),
        // More (b, d, n) state lanes than 64 per channel: the carry's grid.
        (dims(3, 2, 50, 64, 1), false),
        (dims(1, 2, 4097, 16, 1), false),
    ];
    for (i, (d, grouped)) in shapes.into_iter().enumerate() {
        let case = Case::new(d, grouped, 10 * i as u64, (-3.0, 1.0), (-2.0, -0.05));
        let chunks: &[usize] = if d.len > 2000 { &[16] } else { &[4, 16] };
        check(&dev, &case, chunks, 2e-4);
    }
}

/// Decays near 0 (large δ, very negative A) and near 1 (δ ≈ 0) over a long
/// sequence stay finite and accurate.
#[test]
fn selective_scan_stays_finite_at_extreme_decays() {
    let Some(dev) = common::device() else { return };
    let d = dims(1, 3, 1000, 4, 1);
    // exp(δ A) ≈ 0: δ up to 20 after softplus, A down to −50.
    let strong = Case::new(d, false, 70, (5.0, 20.0), (-50.0, -10.0));
    check(&dev, &strong, &[16], 2e-4);
    // exp(δ A) ≈ 1: δ = softplus(−12..−8) ≈ 1e-5, A small.
    let weak = Case::new(d, false, 80, (-12.0, -8.0), (-0.01, -0.001));
    check(&dev, &weak, &[16], 2e-4);
}

#[test]
fn bad_selective_scan_input_is_a_typed_error() {
    let Some(dev) = common::device() else { return };
    let t = |s: &[usize]| Tensor::zeros(&dev, s).unwrap();
    let (u, a, bm) = (t(&[2, 4, 5]), t(&[4, 3]), t(&[2, 3, 5]));
    let ok = SelectiveScanInputs {
        u: &u,
        delta: &u,
        a: &a,
        b: &bm,
        c: &bm,
        d: None,
        z: None,
        delta_bias: None,
        h0: None,
    };
    let s = SelectiveScan::default();
    assert!(s.forward(&ok).is_ok());
    let shape_err = |x: SelectiveScanInputs| match s.forward(&x) {
        Err(Error::ShapeMismatch {
            op: "selective_scan",
            ..
        }) => {}
        other => panic!("expected a shape error, got {other:?}"),
    };
    let short = t(&[2, 4, 4]);
    shape_err(SelectiveScanInputs {
        delta: &short,
        ..ok
    });
    let wrong_a = t(&[5, 3]);
    shape_err(SelectiveScanInputs { a: &wrong_a, ..ok });
    let groups = t(&[2, 3, 3, 5]); // 3 groups do not divide 4 channels
    shape_err(SelectiveScanInputs {
        b: &groups,
        c: &groups,
        ..ok
    });
    let empty = t(&[2, 4, 0]);
    shape_err(SelectiveScanInputs {
        u: &empty,
        delta: &empty,
        ..ok
    });
    let bad_h0 = t(&[2, 4, 2]);
    shape_err(SelectiveScanInputs {
        h0: Some(&bad_h0),
        ..ok
    });
    let wide = SelectiveScan { chunk: 33, ..s };
    assert!(matches!(
        wide.forward(&ok),
        Err(Error::InvalidArgument { .. })
    ));
    let ids = Tensor::from_slice_u32(&dev, &[0; 40], &[2, 4, 5]).unwrap();
    assert!(matches!(
        s.forward(&SelectiveScanInputs { u: &ids, ..ok }),
        Err(Error::DType { .. })
    ));
}
