//! The linear-attention layers against plain-recurrence PyTorch
//! transcriptions of their papers (tools/make_attention_fixtures.py):
//! outputs, final states and every gradient (parameters, input, initial
//! state); step by step equal to the parallel form; a sequence split
//! across calls equal to one call; typed errors.

mod common;

use std::path::PathBuf;

use common::{assert_matches, data, device, max_diff, Fixture};
use recur_nn::functional as F;
use recur_nn::{
    AttentionState, Device, GatedLinearAttention, GlaConfig, LinearAttention,
    LinearAttentionConfig, Module, Result, Retention, RetentionConfig, Rng, Tensor, Var,
};
use safetensors::SafeTensors;

/// The three layers behind one interface for the tests.
#[derive(Clone)]
enum AnyLayer {
    Linear(LinearAttention),
    Retention(Retention),
    Gla(GatedLinearAttention),
}

impl AnyLayer {
    fn new(dev: &Device, kind: &str, d: usize, chunk: usize, seed: u64) -> Self {
        let rng = &mut Rng::new(seed);
        match kind {
            "linear" => {
                let mut c = LinearAttentionConfig::new(d, 2);
                c.chunk = chunk;
                Self::Linear(c.init(dev, rng).unwrap())
            }
            "retention" => {
                let mut c = RetentionConfig::new(d, 2);
                c.chunk = chunk;
                Self::Retention(c.init(dev, rng).unwrap())
            }
            _ => {
                let mut c = GlaConfig::new(d, 2);
                c.chunk = chunk;
                Self::Gla(c.init(dev, rng).unwrap())
            }
        }
    }

    fn params(&self) -> Vec<(String, Var)> {
        match self {
            Self::Linear(l) => l.named_parameters(),
            Self::Retention(l) => l.named_parameters(),
            Self::Gla(l) => l.named_parameters(),
        }
    }

    fn run(&self, x: &Var, s: Option<&AttentionState>) -> Result<(Var, AttentionState)> {
        match self {
            Self::Linear(l) => l.forward_with_state(x, s),
            Self::Retention(l) => l.forward_with_state(x, s),
            Self::Gla(l) => l.forward_with_state(x, s),
        }
    }

    fn step(&self, x: &Var, s: Option<&AttentionState>) -> Result<(Var, AttentionState)> {
        match self {
            Self::Linear(l) => l.step(x, s),
            Self::Retention(l) => l.step(x, s),
            Self::Gla(l) => l.step(x, s),
        }
    }
}

const KINDS: [&str; 3] = ["linear", "retention", "gla"];

#[test]
fn the_layers_match_plain_recurrence_transcriptions_of_their_papers() {
    let Some(dev) = device() else { return };
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/attention");
    for kind in KINDS {
        let bytes = std::fs::read(dir.join(format!("{kind}.safetensors"))).unwrap();
        let f = Fixture {
            st: SafeTensors::deserialize(&bytes).unwrap(),
        };
        // Chunks of 8 over T = 11: a full chunk and a partial one.
        let layer = AnyLayer::new(&dev, kind, 16, 8, 1);
        let params = layer.params();
        for (name, p) in &params {
            let t = f
                .tensor(&dev, name)
                .unwrap_or_else(|| panic!("{kind}: no {name}"));
            assert_eq!(p.shape(), t.shape(), "{kind}: {name}");
            p.assign(&t).unwrap();
        }
        let x = Var::param(f.tensor(&dev, "x").unwrap());
        let h0 = Var::param(f.tensor(&dev, "h0").unwrap());
        let state = AttentionState {
            s: h0.clone(),
            pos: 0,
        };
        let (y, last) = layer.run(&x, Some(&state)).unwrap();
        assert_matches(
            &format!("{kind} y"),
            &y.to_vec().unwrap(),
            &f.get("y").unwrap().0,
        );
        assert_matches(
            &format!("{kind} state"),
            &last.s.to_vec().unwrap(),
            &f.get("state").unwrap().0,
        );
        assert_eq!(last.pos, 11);
        let w = |n: &str| Var::new(f.tensor(&dev, n).unwrap());
        let loss = F::add(
            &F::sum_all(&F::mul(&y, &w("w_y")).unwrap()).unwrap(),
            &F::sum_all(&F::mul(&last.s, &w("w_state")).unwrap()).unwrap(),
        )
        .unwrap();
        loss.backward().unwrap();
        let mut all = params.clone();
        all.push(("x".into(), x));
        all.push(("h0".into(), h0));
        for (name, p) in all {
            assert_matches(
                &format!("{kind} grad {name}"),
                &p.grad().unwrap().to_vec().unwrap(),
                &f.get(&format!("grad.{name}")).unwrap().0,
            );
        }
    }
}

#[test]
fn stepping_reproduces_the_parallel_form_over_120_steps() {
    let Some(dev) = device() else { return };
    let (b, t, d) = (2, 120, 8);
    let x = Var::new(Tensor::from_slice(&dev, &data(b * t * d, 4), &[b, t, d]).unwrap());
    for kind in KINDS {
        let layer = AnyLayer::new(&dev, kind, d, 16, 3);
        let (whole, last) = layer.run(&x, None).unwrap();
        let whole = whole.to_vec().unwrap();
        let mut state: Option<AttentionState> = None;
        let mut worst = 0.0f32;
        for s in 0..t {
            let xt = F::reshape(&F::slice(&x, 1, s, 1).unwrap(), &[b, d]).unwrap();
            let (y, next) = layer.step(&xt, state.as_ref()).unwrap();
            let y = y.to_vec().unwrap();
            for bi in 0..b {
                worst = worst.max(max_diff(&y[bi * d..][..d], &whole[(bi * t + s) * d..][..d]));
            }
            state = Some(next);
        }
        assert!(worst <= 1e-4, "{kind}: step vs parallel max-abs {worst}");
        let s = state.unwrap();
        assert_eq!(s.pos, t);
        let ds = max_diff(&s.s.to_vec().unwrap(), &last.s.to_vec().unwrap());
        assert!(ds <= 1e-3, "{kind}: final states differ by {ds}");
    }
}

#[test]
fn the_state_carries_a_sequence_across_calls() {
    let Some(dev) = device() else { return };
    let (b, t, d) = (1, 40, 8);
    let x = Var::new(Tensor::from_slice(&dev, &data(b * t * d, 8), &[b, t, d]).unwrap());
    for kind in KINDS {
        let layer = AnyLayer::new(&dev, kind, d, 8, 5);
        let (whole, _) = layer.run(&x, None).unwrap();
        let (a, s) = layer.run(&F::slice(&x, 1, 0, 13).unwrap(), None).unwrap();
        let (c, _) = layer
            .run(&F::slice(&x, 1, 13, 27).unwrap(), Some(&s))
            .unwrap();
        let got: Vec<f32> = a
            .to_vec()
            .unwrap()
            .into_iter()
            .chain(c.to_vec().unwrap())
            .collect();
        let diff = max_diff(&got, &whole.to_vec().unwrap());
        assert!(diff <= 1e-4, "{kind}: split at 13 differs by {diff}");
    }
}

#[test]
fn bad_attention_input_is_a_typed_error() {
    let Some(dev) = device() else { return };
    let v = |s: &[usize]| Var::new(Tensor::zeros(&dev, s).unwrap());
    for kind in KINDS {
        let layer = AnyLayer::new(&dev, kind, 8, 16, 1);
        assert!(layer.run(&v(&[2, 3, 8]), None).is_ok());
        for bad in [v(&[2, 3, 7]), v(&[3, 8]), v(&[2, 0, 8])] {
            assert!(
                matches!(
                    layer.run(&bad, None),
                    Err(recur_nn::Error::ShapeMismatch { .. })
                ),
                "{kind}: {:?}",
                bad.shape()
            );
        }
        let wrong = AttentionState {
            s: v(&[2, 2, 3, 3]),
            pos: 0,
        };
        assert!(layer.run(&v(&[2, 3, 8]), Some(&wrong)).is_err(), "{kind}");
        assert!(layer.step(&v(&[2, 3, 8]), None).is_err(), "{kind}");
    }
    assert!(LinearAttentionConfig::new(8, 3)
        .init(&dev, &mut Rng::new(0))
        .is_err());
    assert!(RetentionConfig::new(6, 2)
        .init(&dev, &mut Rng::new(0))
        .is_err());
    assert!(GlaConfig::new(8, 8).init(&dev, &mut Rng::new(0)).is_err());
}
