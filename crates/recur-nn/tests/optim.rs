//! Fused optimizers and clipping against torch.optim trajectories
//! (tools/make_optim_fixtures.py), and typed errors.

mod common;

use common::device;
use recur_nn::{clip_grad_norm, clip_grad_value, Adam, AdamConfig, Error, Sgd, SgdConfig, Tensor};
use safetensors::SafeTensors;

fn load(st: &SafeTensors, dev: &recur_nn::Device, name: &str) -> (Tensor, Vec<f32>) {
    let t = st
        .tensor(name)
        .unwrap_or_else(|_| panic!("fixture has no {name}"));
    let v: Vec<f32> = t
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    (Tensor::from_slice(dev, &v, t.shape()).unwrap(), v)
}

fn close(what: &str, got: &[f32], want: &[f32]) {
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= 1e-5 + 1e-5 * w.abs(),
            "{what}[{i}]: {g} vs {w}"
        );
    }
}

enum Opt {
    Adam(Adam),
    Sgd(Sgd),
}

#[test]
fn optimizers_follow_torch_optim_trajectories() {
    let Some(dev) = device() else { return };
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/optim.safetensors"
    );
    let bytes = std::fs::read(path).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let configs: [(&str, bool); 5] = [
        ("adam", false),
        ("adamw_clip", true),
        ("sgd_nesterov", false),
        ("sgd_dampening_clip", true),
        ("sgd_plain", false),
    ];
    for (name, clip) in configs {
        let params: Vec<Tensor> = (0..2)
            .map(|k| load(&st, &dev, &format!("{name}/p0.{k}")).0)
            .collect();
        let refs: Vec<&Tensor> = params.iter().collect();
        let mut opt = match name {
            "adam" => Opt::Adam(
                Adam::new(
                    &dev,
                    AdamConfig {
                        weight_decay: 0.01,
                        ..AdamConfig::adam(0.01)
                    },
                    &refs,
                )
                .unwrap(),
            ),
            "adamw_clip" => Opt::Adam(
                Adam::new(
                    &dev,
                    AdamConfig {
                        betas: (0.8, 0.99),
                        eps: 1e-6,
                        weight_decay: 0.1,
                        ..AdamConfig::adamw(0.02)
                    },
                    &refs,
                )
                .unwrap(),
            ),
            "sgd_nesterov" => Opt::Sgd(
                Sgd::new(
                    &dev,
                    SgdConfig {
                        momentum: 0.9,
                        nesterov: true,
                        weight_decay: 1e-3,
                        ..SgdConfig::new(0.1)
                    },
                    &refs,
                )
                .unwrap(),
            ),
            "sgd_dampening_clip" => Opt::Sgd(
                Sgd::new(
                    &dev,
                    SgdConfig {
                        momentum: 0.5,
                        dampening: 0.1,
                        ..SgdConfig::new(0.05)
                    },
                    &refs,
                )
                .unwrap(),
            ),
            _ => Opt::Sgd(Sgd::new(&dev, SgdConfig::new(0.3), &refs).unwrap()),
        };
        for step in 0..3 {
            let grads: Vec<Tensor> = (0..2)
                .map(|k| load(&st, &dev, &format!("{name}/grad.{step}.{k}")).0)
                .collect();
            let grefs: Vec<&Tensor> = grads.iter().collect();
            let scale = if clip {
                let c = clip_grad_norm(&grefs, 1.0).unwrap();
                let want = load(&st, &dev, &format!("{name}/norm.{step}")).1;
                close(
                    &format!("{name} norm {step}"),
                    &c.norm.to_vec().unwrap(),
                    &want,
                );
                Some(c.scale)
            } else {
                None
            };
            match &mut opt {
                Opt::Adam(o) => o.step(&refs, &grefs, scale.as_ref()).unwrap(),
                Opt::Sgd(o) => o.step(&refs, &grefs, scale.as_ref()).unwrap(),
            }
            for (k, p) in params.iter().enumerate() {
                let want = load(&st, &dev, &format!("{name}/p.{step}.{k}")).1;
                close(
                    &format!("{name} step {step} param {k}"),
                    &p.to_vec().unwrap(),
                    &want,
                );
            }
        }
    }
}

#[test]
fn clipping_by_value_and_optimizer_errors() {
    let Some(dev) = device() else { return };
    let g = Tensor::from_slice(&dev, &[-3.0, -0.5, 0.0, 0.25, 9.0], &[5]).unwrap();
    clip_grad_value(&g, 1.0).unwrap();
    assert_eq!(g.to_vec().unwrap(), vec![-1.0, -0.5, 0.0, 0.25, 1.0]);
    assert!(matches!(
        clip_grad_value(&g, -1.0),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        clip_grad_norm(&[&g], 0.0),
        Err(Error::InvalidArgument { .. })
    ));
    let small = clip_grad_norm(&[&g], 100.0).unwrap();
    assert_eq!(
        small.scale.to_vec().unwrap(),
        vec![1.0],
        "no clipping under the threshold"
    );
    let p = Tensor::zeros(&dev, &[5]).unwrap();
    let mut adam = Adam::new(&dev, AdamConfig::adamw(0.1), &[&p]).unwrap();
    assert!(matches!(
        adam.step(&[&p, &p], &[&g], None),
        Err(Error::InvalidArgument { .. })
    ));
    let wrong = Tensor::zeros(&dev, &[4]).unwrap();
    assert!(matches!(
        adam.step(&[&p], &[&wrong], None),
        Err(Error::ShapeMismatch { .. })
    ));
    assert!(Sgd::new(
        &dev,
        SgdConfig {
            nesterov: true,
            ..SgdConfig::new(0.1)
        },
        &[&p]
    )
    .is_err());
    // Hyper-parameters PyTorch refuses are errors here too, at construction
    // and when a schedule sets the rate; a refused rate leaves it unchanged.
    for lr in [f32::NAN, -1e-3, f32::INFINITY] {
        let bad = Adam::new(&dev, AdamConfig::adam(lr), &[&p]).unwrap_err();
        assert!(
            matches!(&bad, Error::InvalidArgument { op: "Adam::new", what } if what.contains("lr")),
            "{bad}"
        );
        assert!(Sgd::new(&dev, SgdConfig::new(lr), &[&p]).is_err());
        assert!(adam.set_lr(lr).is_err());
    }
    let betas = AdamConfig {
        betas: (0.9, 1.0),
        ..AdamConfig::adam(1e-3)
    };
    assert!(Adam::new(&dev, betas, &[&p]).is_err());
    let momentum = SgdConfig {
        momentum: -0.5,
        ..SgdConfig::new(0.1)
    };
    assert!(Sgd::new(&dev, momentum, &[&p]).is_err());
    // The rate refused above left the earlier one in place: a step of 0.1.
    let one = Tensor::full(&dev, &[5], 1.0).unwrap();
    let q = Tensor::zeros(&dev, &[5]).unwrap();
    let mut fresh = Adam::new(&dev, AdamConfig::adam(0.1), &[&q]).unwrap();
    assert!(fresh.set_lr(f32::NAN).is_err());
    fresh.step(&[&q], &[&one], None).unwrap();
    for v in q.to_vec().unwrap() {
        assert!((v + 0.1).abs() < 1e-5, "{v}");
    }
}

/// `step_params` reads the gradients `backward` left in the parameters,
/// for any optimizer behind the `Optimizer` trait.
#[test]
fn optimizers_step_parameters_from_their_gradients() {
    use recur_nn::{functional as F, Optimizer, Var};
    let Some(dev) = device() else { return };
    let w = Var::param(Tensor::from_slice(&dev, &[1.0, -2.0, 0.5], &[3]).unwrap());
    let ws = std::slice::from_ref(&w);
    let mut opts: Vec<Box<dyn Optimizer>> = vec![
        Box::new(Sgd::for_params(SgdConfig::new(0.1), ws).unwrap()),
        Box::new(Adam::for_params(AdamConfig::adam(0.1), ws).unwrap()),
    ];
    // Without a backward there is nothing to step with: a typed error.
    assert!(opts[0].step_params(ws, None).is_err());
    // SGD on Σ w²: w ← w − 0.1 · 2w = 0.8 w.
    F::sum_all(&F::mul(&w, &w).unwrap())
        .unwrap()
        .backward()
        .unwrap();
    opts[0].step_params(ws, None).unwrap();
    let got = w.to_vec().unwrap();
    for (g, want) in got.iter().zip([0.8, -1.6, 0.4]) {
        assert!((g - want).abs() < 1e-6, "{got:?}");
    }
    // Adam's first step moves each weight by lr against its gradient's sign.
    w.zero_grad();
    F::sum_all(&F::mul(&w, &w).unwrap())
        .unwrap()
        .backward()
        .unwrap();
    opts[1].set_learning_rate(0.1).unwrap();
    assert!(opts[1].set_learning_rate(f32::NAN).is_err());
    assert!(opts[0].set_learning_rate(-0.1).is_err());
    opts[1].step_params(ws, None).unwrap();
    let after = w.to_vec().unwrap();
    for (a, b) in after.iter().zip(&got) {
        assert!((a - (b - 0.1 * b.signum())).abs() < 1e-4, "{after:?}");
    }
}
