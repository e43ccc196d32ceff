//! The f64 linear-attention reference (the plain recurrence) against
//! finite differences: every gradient (q, k, v, the decay, the initial
//! state) for every decay kind. CPU only.

use recur_gpu::ops::linear_attention::DecayKind;
use recur_gpu::reference::{self, LaDecay, LaDims, LaRefInputs};
use recur_gpu::Rng;

fn gen(n: usize, seed: u64, lo: f64, hi: f64) -> Vec<f64> {
    let mut r = Rng::new(seed);
    (0..n)
        .map(|_| lo + (hi - lo) * r.next_f32() as f64)
        .collect()
}

/// One case's values, heads first.
struct Case {
    kind: DecayKind,
    dims: LaDims,
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
            DecayKind::Head => gen(h, seed + 3, -strength, 0.0),
            DecayKind::Scalar => gen(b * h * t, seed + 3, -strength, 0.0),
            DecayKind::Vector => gen(b * h * t * dk, seed + 3, -strength, 0.0),
        };
        Self {
            kind,
            dims,
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

#[test]
fn the_reference_backward_matches_finite_differences() {
    let d = LaDims {
        batch: 1,
        heads: 2,
        len: 6,
        dk: 3,
        dv: 2,
    };
    for kind in DecayKind::ALL {
        let c = Case::new(d, kind, 31, 0.7);
        let r = c.reference(true);
        let grads = reference::linear_attention_backward(&r, &c.dout, Some(&c.dlast));
        let loss = |c: &Case| -> f64 {
            let (out, last) = reference::linear_attention(&c.reference(true));
            let a: f64 = out.iter().zip(&c.dout).map(|(x, y)| x * y).sum();
            a + last.iter().zip(&c.dlast).map(|(x, y)| x * y).sum::<f64>()
        };
        let mut which: Vec<(&str, Vec<f64>)> = vec![
            ("q", grads.dq.clone()),
            ("k", grads.dk.clone()),
            ("v", grads.dv.clone()),
            ("h0", grads.dh0.clone()),
        ];
        if let Some(dg) = &grads.ddecay {
            which.push(("g", dg.clone()));
        }
        for (name, analytic) in which {
            for (i, &want) in analytic.iter().enumerate() {
                let mut plus = Case::new(d, kind, 31, 0.7);
                let mut minus = Case::new(d, kind, 31, 0.7);
                let eps = 1e-6;
                for (case, s) in [(&mut plus, eps), (&mut minus, -eps)] {
                    let field = match name {
                        "q" => &mut case.q,
                        "k" => &mut case.k,
                        "v" => &mut case.v,
                        "h0" => &mut case.h0,
                        _ => &mut case.g,
                    };
                    field[i] += s;
                }
                let fd = (loss(&plus) - loss(&minus)) / (2.0 * eps);
                assert!(
                    (fd - want).abs() <= 1e-6 * (1.0 + want.abs()),
                    "{kind:?} d{name}[{i}]: finite difference {fd}, backward {want}"
                );
            }
        }
    }
}
