//! The scan kernels against the f64 reference: linear and log-space, forward
//! and backward, serial, chunked (subgroup and workgroup-memory paths) and
//! time-parallel (chosen and forced chunk lengths), both layouts, with and
//! without an initial state, on odd shapes.

mod common;

use common::{assert_close, upload};
use recur_gpu::ops::scan::{self, Scan, ScanKind, ScanLayout, ScanStrategy};
use recur_gpu::{reference, Rng};

/// Every strategy and tunable setting of the scan kernels.
fn strategies(kind: ScanKind, layout: ScanLayout) -> Vec<Scan> {
    let base = Scan {
        layout,
        ..Scan::new(kind)
    };
    let with = |strategy, subgroups, chunk| Scan {
        strategy,
        subgroups,
        chunk,
        ..base
    };
    vec![
        with(ScanStrategy::Serial, false, None),
        with(ScanStrategy::Chunked, false, None),
        with(ScanStrategy::Chunked, true, None),
        with(ScanStrategy::TimeParallel, false, None),
        with(ScanStrategy::TimeParallel, false, Some(1)),
        with(ScanStrategy::TimeParallel, false, Some(5)),
    ]
}

/// Values for (B, T, D) in batch-first order, drawn from `f`.
fn gen(n: usize, seed: u64, f: impl Fn(f32) -> f32) -> Vec<f32> {
    let mut r = Rng::new(seed);
    (0..n).map(|_| f(r.next_f32())).collect()
}

/// Reorders batch-first (B, T, D) data into `layout`.
fn to_layout(x: &[f32], (b, t, d): (usize, usize, usize), layout: ScanLayout) -> Vec<f32> {
    match layout {
        ScanLayout::BatchFirst => x.to_vec(),
        ScanLayout::TimeMajor => {
            let mut y = vec![0.0; x.len()];
            for bi in 0..b {
                for ti in 0..t {
                    for di in 0..d {
                        y[(ti * b + bi) * d + di] = x[(bi * t + ti) * d + di];
                    }
                }
            }
            y
        }
    }
}

fn shape_of((b, t, d): (usize, usize, usize), layout: ScanLayout) -> [usize; 3] {
    match layout {
        ScanLayout::BatchFirst => [b, t, d],
        ScanLayout::TimeMajor => [t, b, d],
    }
}

/// The sequence of channel (bi, di) from batch-first data, in f64.
fn column(x: &[f32], (_, t, d): (usize, usize, usize), bi: usize, di: usize) -> Vec<f64> {
    (0..t).map(|ti| x[(bi * t + ti) * d + di] as f64).collect()
}

struct Want {
    h: Vec<f32>,
    last: Vec<f32>,
    da: Vec<f32>,
    db: Vec<f32>,
    dh0: Vec<f32>,
}

/// The inputs of one reference computation, batch-first.
struct Case<'a> {
    a: &'a [f32],
    b: &'a [f32],
    h0: Option<&'a [f32]>,
    g: &'a [f32],
    dl: &'a [f32],
}

/// Reference results in batch-first order.
fn reference(kind: ScanKind, dims: (usize, usize, usize), c: &Case) -> Want {
    let Case { a, b, h0, g, dl } = *c;
    let (bs, t, d) = dims;
    let n = bs * t * d;
    let mut w = Want {
        h: vec![0.0; n],
        last: vec![0.0; bs * d],
        da: vec![0.0; n],
        db: vec![0.0; n],
        dh0: vec![0.0; bs * d],
    };
    for bi in 0..bs {
        for di in 0..d {
            let (ac, bc, gc) = (
                column(a, dims, bi, di),
                column(b, dims, bi, di),
                column(g, dims, bi, di),
            );
            let init = match (h0, kind) {
                (Some(h), _) => h[bi * d + di] as f64,
                (None, ScanKind::Linear) => 0.0,
                (None, ScanKind::Log) => f64::NEG_INFINITY,
            };
            let dlast = dl[bi * d + di] as f64;
            let (h, (da, db, dh0)) = match kind {
                ScanKind::Linear => {
                    let h = reference::linear_scan(&ac, &bc, init);
                    let gr = reference::linear_scan_backward(&ac, &h, init, &gc, dlast);
                    (h, gr)
                }
                ScanKind::Log => {
                    let h = reference::log_scan(&ac, &bc, init);
                    let gr = reference::log_scan_backward(&ac, &bc, &h, init, &gc, dlast);
                    (h, gr)
                }
            };
            for ti in 0..t {
                let i = (bi * t + ti) * d + di;
                w.h[i] = h[ti] as f32;
                w.da[i] = da[ti] as f32;
                w.db[i] = db[ti] as f32;
            }
            w.last[bi * d + di] = h[t - 1] as f32;
            w.dh0[bi * d + di] = dh0 as f32;
        }
    }
    w
}

#[test]
fn scans_match_the_reference_on_odd_shapes_for_every_variant() {
    let Some(dev) = common::device() else { return };
    // D odd runs the f32 kernels, D % 4 == 0 the vec4 ones.
    let shapes = [
        (1, 1, 1),
        (2, 7, 5),
        (3, 1000, 13),
        (1, 4097, 9),
        (2, 33, 12),
        (1, 4097, 8),
    ];
    let mut seed = 0;
    for &dims in &shapes {
        let (bs, t, d) = dims;
        let n = bs * t * d;
        for kind in [ScanKind::Linear, ScanKind::Log] {
            seed += 10;
            // a in (0.2, 1) (log: its log); b in (−1, 1) (log: log b in (−2, 1)).
            let (a, b) = match kind {
                ScanKind::Linear => (
                    gen(n, seed, |u| 0.2 + 0.8 * u),
                    gen(n, seed + 1, |u| 2.0 * u - 1.0),
                ),
                ScanKind::Log => (
                    gen(n, seed, |u| (0.2 + 0.8 * u).ln()),
                    gen(n, seed + 1, |u| 3.0 * u - 2.0),
                ),
            };
            let h0 = gen(bs * d, seed + 2, |u| u - 0.5);
            let g = gen(n, seed + 3, |u| 2.0 * u - 1.0);
            let dl = gen(bs * d, seed + 4, |u| u - 0.5);
            for with_h0 in [false, true] {
                let case = Case {
                    a: &a,
                    b: &b,
                    h0: with_h0.then_some(&h0[..]),
                    g: &g,
                    dl: &dl,
                };
                let want = reference(kind, dims, &case);
                for layout in [ScanLayout::BatchFirst, ScanLayout::TimeMajor] {
                    let shape = shape_of(dims, layout);
                    let at = upload(&dev, &to_layout(&a, dims, layout), &shape);
                    let bt = upload(&dev, &to_layout(&b, dims, layout), &shape);
                    let gt = upload(&dev, &to_layout(&g, dims, layout), &shape);
                    let h0t = upload(&dev, &h0, &[bs, d]);
                    let dlt = upload(&dev, &dl, &[bs, d]);
                    for plan in strategies(kind, layout) {
                        let what = format!("{dims:?} h0 {with_h0} {plan:?}");
                        let h0r = with_h0.then_some(&h0t);
                        let out = plan.forward(&at, &bt, h0r).unwrap();
                        let tol = 2e-4 + 2e-6 * t as f32;
                        assert_close(
                            &format!("{what} h"),
                            &out.h.to_vec().unwrap(),
                            &to_layout(&want.h, dims, layout),
                            tol,
                            tol,
                        );
                        assert_close(
                            &format!("{what} last"),
                            &out.last.to_vec().unwrap(),
                            &want.last,
                            tol,
                            tol,
                        );
                        let gr = plan
                            .backward([&at, &bt, &out.h], h0r, Some(&gt), Some(&dlt))
                            .unwrap();
                        for (name, got, w) in [("da", &gr.da, &want.da), ("db", &gr.db, &want.db)] {
                            assert_close(
                                &format!("{what} {name}"),
                                &got.to_vec().unwrap(),
                                &to_layout(w, dims, layout),
                                tol * 5.0,
                                tol * 5.0,
                            );
                        }
                        assert_eq!(gr.dh0.is_some(), with_h0);
                        if let Some(dh0) = gr.dh0 {
                            assert_close(
                                &format!("{what} dh0"),
                                &dh0.to_vec().unwrap(),
                                &want.dh0,
                                tol * 5.0,
                                tol * 5.0,
                            );
                        }
                    }
                }
            }
        }
    }
}

/// Gates at the extremes (a → 0 and a → 1) over a long sequence stay finite
/// and accurate in log space.
#[test]
fn log_scan_stays_finite_at_extreme_gates() {
    let Some(dev) = common::device() else { return };
    let (bs, t, d) = (1, 4097, 4);
    let dims = (bs, t, d);
    let n = bs * t * d;
    // Channel 0: a = e^-60 (forgets at once); 1: a = 1 − 1e-7 (log a ≈ −1e-7);
    // 2: log b ≈ −80 (b far below f32's normal range); 3: mixed.
    let la: Vec<f32> = (0..n)
        .map(|i| match i % d {
            0 => -60.0,
            1 => -1e-7,
            2 => -0.01,
            _ => {
                if (i / d) % 2 == 0 {
                    -30.0
                } else {
                    -1e-6
                }
            }
        })
        .collect();
    let lb: Vec<f32> = (0..n)
        .map(|i| match i % d {
            2 => -80.0,
            _ => ((i / d) % 7) as f32 * 0.3 - 1.0,
        })
        .collect();
    let g = gen(n, 5, |u| u - 0.5);
    let dl = vec![0.0; bs * d];
    let case = Case {
        a: &la,
        b: &lb,
        h0: None,
        g: &g,
        dl: &dl,
    };
    let want = reference(ScanKind::Log, dims, &case);
    for plan in strategies(ScanKind::Log, ScanLayout::BatchFirst) {
        let strategy = (plan.strategy, plan.chunk);
        let at = upload(&dev, &la, &[bs, t, d]);
        let bt = upload(&dev, &lb, &[bs, t, d]);
        let out = plan.forward(&at, &bt, None).unwrap();
        let h = out.h.to_vec().unwrap();
        assert!(
            h.iter().all(|v| v.is_finite()),
            "{strategy:?}: non-finite log h"
        );
        assert_close(&format!("{strategy:?} log h"), &h, &want.h, 1e-3, 1e-4);
        let gt = upload(&dev, &g, &[bs, t, d]);
        let gr = plan
            .backward([&at, &bt, &out.h], None, Some(&gt), None)
            .unwrap();
        for (name, got, w) in [("dla", &gr.da, &want.da), ("dlb", &gr.db, &want.db)] {
            let got = got.to_vec().unwrap();
            assert!(got.iter().all(|v| v.is_finite()), "{strategy:?} {name}");
            assert_close(&format!("{strategy:?} {name}"), &got, w, 1e-3, 1e-3);
        }
    }
}

#[test]
fn bad_scan_input_is_a_typed_error() {
    let Some(dev) = common::device() else { return };
    let a = upload(&dev, &[0.5; 6], &[1, 3, 2]);
    let short = upload(&dev, &[0.5; 4], &[1, 2, 2]);
    let empty = upload(&dev, &[], &[1, 0, 2]);
    let run = |x: &recur_gpu::Tensor, y: &recur_gpu::Tensor, h0| {
        scan::scan(
            ScanKind::Linear,
            x,
            y,
            h0,
            ScanLayout::BatchFirst,
            ScanStrategy::Auto,
        )
    };
    assert!(matches!(
        run(&a, &short, None),
        Err(recur_gpu::Error::ShapeMismatch { .. })
    ));
    assert!(run(&empty, &empty, None).is_err());
    let bad_h0 = upload(&dev, &[0.0; 3], &[1, 3]);
    assert!(run(&a, &a, Some(&bad_h0)).is_err());
}

/// A batch-first sequence larger than one storage binding is scanned in
/// groups of whole batch items, each bound at its offset, and matches the
/// same items scanned one by one: bit for bit with the serial kernel (the
/// same order of operations), and within rounding with the strategy `Auto`
/// picks (on a GPU the whole batch and one item may get different time
/// chunkings; a wrong offset or a mixed-up item would differ by O(1)).
#[test]
fn sequences_over_the_binding_limit_are_split_by_batch() {
    let Some(dev) = common::device() else { return };
    let limits = dev.info().limits.clone();
    let limit = limits.max_storage_buffer_binding_size as usize;
    let (t, d) = (2048, 256); // 2 MiB per item, offsets aligned
    let bs = limit / (4 * t * d) + 2;
    if (bs * t * d * 4) as u64 > limits.max_buffer_size {
        return;
    }
    let n = bs * t * d;
    let mut rng = Rng::new(9);
    for kind in [ScanKind::Linear, ScanKind::Log] {
        let (lo, hi) = if kind == ScanKind::Linear {
            (0.5, 1.0)
        } else {
            (-0.7, 0.0)
        };
        let a = recur_gpu::Tensor::rand(&dev, &[bs, t, d], lo, hi, &mut rng).unwrap();
        let b = recur_gpu::Tensor::rand(&dev, &[bs, t, d], -1.0, 1.0, &mut rng).unwrap();
        let g = recur_gpu::Tensor::rand(&dev, &[bs, t, d], -1.0, 1.0, &mut rng).unwrap();
        let h0 = recur_gpu::Tensor::rand(&dev, &[bs, d], 0.1, 1.0, &mut rng).unwrap();
        assert!(a.bytes() > limit as u64);
        type T = recur_gpu::Tensor;
        let run = |plan: Scan, [a, b, g, h0]: [&T; 4]| {
            let out = plan.forward(a, b, Some(h0)).unwrap();
            let gr = plan
                .backward([a, b, &out.h], Some(h0), Some(g), None)
                .unwrap();
            (out, gr)
        };
        for (strategy, tol) in [(ScanStrategy::Serial, 0.0), (ScanStrategy::Auto, 1e-4)] {
            let plan = Scan {
                strategy,
                ..Scan::new(kind)
            };
            let (out, gr) = run(plan, [&a, &b, &g, &h0]);
            let (h, last, da) = (
                out.h.to_vec().unwrap(),
                out.last.to_vec().unwrap(),
                gr.da.to_vec().unwrap(),
            );
            assert_eq!(h.len(), n);
            // The first and the last item, scanned alone (each fits a binding).
            // (Slicing the big tensors on the GPU would bind them whole.)
            let (ah, bh, gh) = (
                a.to_vec().unwrap(),
                b.to_vec().unwrap(),
                g.to_vec().unwrap(),
            );
            for item in [0, bs - 1] {
                let one = |x: &[f32]| upload(&dev, &x[item * t * d..][..t * d], &[1, t, d]);
                let h0i = recur_gpu::ops::layout::slice(&h0, 0, item, 1).unwrap();
                let (ai, bi, gi) = (one(&ah), one(&bh), one(&gh));
                let (o, gi) = run(plan, [&ai, &bi, &gi, &h0i]);
                let what = format!("{kind:?} {strategy:?} item {item} of {bs}");
                assert_close(
                    &format!("{what} h"),
                    &h[item * t * d..][..t * d],
                    &o.h.to_vec().unwrap(),
                    tol,
                    tol,
                );
                assert_close(
                    &format!("{what} last"),
                    &last[item * d..][..d],
                    &o.last.to_vec().unwrap(),
                    tol,
                    tol,
                );
                assert_close(
                    &format!("{what} da"),
                    &da[item * t * d..][..t * d],
                    &gi.da.to_vec().unwrap(),
                    tol,
                    tol,
                );
            }
        }
    }
    // Time-major sequences cannot be split by item: a typed error.
    let tm = recur_gpu::Tensor::zeros(&dev, &[t, bs, d]).unwrap();
    let err = scan::scan(
        ScanKind::Linear,
        &tm,
        &tm,
        None,
        ScanLayout::TimeMajor,
        ScanStrategy::Auto,
    )
    .unwrap_err();
    assert!(matches!(err, recur_gpu::Error::TooLarge { .. }), "{err}");
}
