//! The autograd tape: every differentiable op's backward against central
//! differences of its forward (on the GPU, in f32), and the tape's rules:
//! accumulation, shared inputs, no_grad, detach, multi-output nodes.

mod common;

use common::{data, device, gradcheck, input};
use recur_nn::{
    functional as F, no_grad, Error, LossReduction, Module, RecurrentConfig, Rng, Tensor, Var,
};

#[test]
fn every_op_matches_finite_differences() {
    let Some(dev) = device() else { return };
    let d = &dev;
    gradcheck(
        d,
        "linear",
        &[input(&[2, 3, 4], 1), input(&[5, 4], 2), input(&[5], 3)],
        |v| F::linear(&v[0], &v[1], Some(&v[2])),
    );
    gradcheck(d, "matmul", &[input(&[3, 4], 4), input(&[4, 2], 5)], |v| {
        F::matmul(&v[0], &v[1])
    });
    gradcheck(
        d,
        "add broadcast",
        &[input(&[3, 4], 6), input(&[4], 7)],
        |v| F::add(&v[0], &v[1]),
    );
    gradcheck(
        d,
        "sub broadcast",
        &[input(&[2, 3], 8), input(&[3], 9)],
        |v| F::sub(&v[0], &v[1]),
    );
    gradcheck(
        d,
        "mul broadcast",
        &[input(&[2, 5], 10), input(&[5], 11)],
        |v| F::mul(&v[0], &v[1]),
    );
    gradcheck(d, "shared input x*x", &[input(&[6], 12)], |v| {
        F::mul(&v[0], &v[0])
    });
    gradcheck(d, "scale tanh sigmoid", &[input(&[7], 13)], |v| {
        F::sigmoid(&F::tanh(&F::scale(&v[0], 1.5)?)?)
    });
    gradcheck(
        d,
        "reshape slice concat swap01",
        &[input(&[3, 2, 4], 14)],
        |v| {
            let s = F::slice(&v[0], 2, 1, 2)?;
            let c = F::concat(&[&s, &v[0]], 2)?;
            F::swap01(&F::reshape(&c, &[3, 2, 6])?)
        },
    );
    gradcheck(d, "mean_all", &[input(&[4, 3], 15)], |v| F::mean_all(&v[0]));
    let targets = Tensor::from_slice_u32(d, &[2, 0, 4, 1], &[4]).unwrap();
    gradcheck(d, "cross_entropy", &[input(&[4, 5], 16)], |v| {
        F::cross_entropy(&v[0], &targets, Some(4), LossReduction::Mean)
    });
    gradcheck(d, "cross_entropy sum", &[input(&[4, 5], 17)], |v| {
        F::cross_entropy(&v[0], &targets, None, LossReduction::Sum)
    });
    gradcheck(d, "mse", &[input(&[3, 3], 18), input(&[3, 3], 19)], |v| {
        F::mse_loss(&v[0], &v[1], LossReduction::Mean)
    });
    gradcheck(
        d,
        "layer_norm",
        &[input(&[3, 6], 20), input(&[6], 21), input(&[6], 22)],
        |v| F::layer_norm(&v[0], Some(&v[1]), Some(&v[2]), 1e-5),
    );
    gradcheck(d, "rms_norm", &[input(&[4, 5], 23), input(&[5], 24)], |v| {
        F::rms_norm(&v[0], Some(&v[1]), 1e-6)
    });
    let ids = Tensor::from_slice_u32(d, &[1, 3, 1, 0, 2, 1], &[2, 3]).unwrap();
    gradcheck(d, "embedding", &[input(&[4, 3], 25)], |v| {
        F::embedding(&v[0], &ids)
    });
    gradcheck(d, "dropout", &[input(&[20], 26)], |v| {
        F::dropout(&v[0], 0.3, &mut Rng::new(5))
    });
}

#[test]
fn a_recurrent_sequence_is_one_node_with_every_gradient() {
    let Some(dev) = device() else { return };
    for config in [
        RecurrentConfig {
            num_layers: 2,
            ..RecurrentConfig::lstm(3, 4)
        },
        RecurrentConfig {
            bidirectional: true,
            ..RecurrentConfig::gru(3, 4)
        },
    ] {
        let model = config.init(&dev, &mut Rng::new(7)).unwrap();
        let lstm = config.cell == recur_nn::Cell::Lstm;
        let ld = config.num_layers * config.directions();
        let mut inputs = vec![input(&[5, 2, 3], 30), input(&[ld, 2, 4], 31)];
        if lstm {
            inputs.push(input(&[ld, 2, 4], 32));
        }
        // Every output of the node: the sequence, h_n and c_n.
        let run = |v: &[Var]| -> recur_nn::Result<Var> {
            let o = model.forward_var(&v[0], Some(&v[1]), v.get(2))?;
            let flat = |x: &Var| F::reshape(x, &[x.value().numel()]);
            let mut parts = vec![flat(&o.output)?, flat(&o.h_n)?];
            if let Some(c) = &o.c_n {
                parts.push(flat(c)?);
            }
            F::concat(&parts.iter().collect::<Vec<_>>(), 0)
        };
        let what = format!("{:?}", config.cell);
        gradcheck(&dev, &what, &inputs, run);
        // The whole multi-layer sequence is one node: every output comes
        // from the same "recurrent" op, whose inputs are x, the states and
        // the parameters.
        let x = Var::param(Tensor::from_slice(&dev, &inputs[0].0, &inputs[0].1).unwrap());
        let o = model.forward_var(&x, None, None).unwrap();
        for v in [Some(&o.output), Some(&o.h_n), o.c_n.as_ref()]
            .into_iter()
            .flatten()
        {
            assert!(format!("{v:?}").ends_with("from recurrent)"), "{v:?}");
        }

        // Parameter gradients, against differences of the same loss.
        let consts: Vec<Var> = inputs
            .iter()
            .map(|(d, s)| Var::new(Tensor::from_slice(&dev, d, s).unwrap()))
            .collect();
        let probe = run(&consts).unwrap();
        let w = Var::new(
            Tensor::from_slice(&dev, &data(probe.value().numel(), 98), probe.shape()).unwrap(),
        );
        let loss = || F::sum_all(&F::mul(&run(&consts).unwrap(), &w).unwrap()).unwrap();
        model.zero_grad();
        loss().backward().unwrap();
        let eps = 1e-2;
        for (name, p) in model.named_parameters() {
            let grad = p.grad().unwrap().to_vec().unwrap();
            let base = p.to_vec().unwrap();
            for i in (0..base.len()).step_by(5) {
                let at = |delta: f32| {
                    let mut d = base.clone();
                    d[i] += delta;
                    p.assign(&Tensor::from_slice(&dev, &d, p.shape()).unwrap())
                        .unwrap();
                    loss().item().unwrap()
                };
                let num = (at(eps) - at(-eps)) / (2.0 * eps);
                assert!(
                    (num - grad[i]).abs() <= 3e-3 + 2e-2 * num.abs(),
                    "{what} {name}[{i}]: numeric {num}, autograd {}",
                    grad[i]
                );
            }
            p.assign(&Tensor::from_slice(&dev, &base, p.shape()).unwrap())
                .unwrap();
        }
    }
}

#[test]
fn gradients_accumulate_and_no_grad_and_detach_cut_the_graph() {
    let Some(dev) = device() else { return };
    let x = Var::param(Tensor::from_slice(&dev, &[1.0, 2.0, 3.0], &[3]).unwrap());
    let y = F::sum_all(&F::mul(&x, &x).unwrap()).unwrap();
    y.backward().unwrap();
    assert_eq!(x.grad().unwrap().to_vec().unwrap(), [2.0, 4.0, 6.0]);
    y.backward().unwrap();
    assert_eq!(
        x.grad().unwrap().to_vec().unwrap(),
        [4.0, 8.0, 12.0],
        "a second backward accumulates"
    );
    x.zero_grad();
    assert!(x.grad().is_none());

    // A detached branch contributes no gradient.
    let d = F::mul(&x.detach(), &x).unwrap();
    F::sum_all(&d).unwrap().backward().unwrap();
    assert_eq!(x.grad().unwrap().to_vec().unwrap(), [1.0, 2.0, 3.0]);
    x.zero_grad();

    {
        let _g = no_grad();
        let z = F::mul(&x, &x).unwrap();
        assert!(!z.requires_grad() && z.is_leaf());
        let err = F::sum_all(&z).unwrap().backward().unwrap_err();
        assert!(matches!(err, Error::InvalidArgument { .. }), "{err}");
    }
    assert!(F::mul(&x, &x).unwrap().requires_grad(), "recording resumes");

    // Non-scalar backward needs an explicit gradient of the right shape.
    let v = F::scale(&x, 2.0).unwrap();
    assert!(matches!(v.backward(), Err(Error::ShapeMismatch { .. })));
    assert!(v.backward_with(Tensor::zeros(&dev, &[2]).unwrap()).is_err());
    v.backward_with(Tensor::from_slice(&dev, &[1.0, 0.0, -1.0], &[3]).unwrap())
        .unwrap();
    assert_eq!(x.grad().unwrap().to_vec().unwrap(), [2.0, 0.0, -2.0]);

    // assign keeps the var (optimizers hold it) and checks the shape.
    x.assign(&Tensor::from_slice(&dev, &[5.0, 6.0, 7.0], &[3]).unwrap())
        .unwrap();
    assert_eq!(x.to_vec().unwrap(), [5.0, 6.0, 7.0]);
    assert!(x.assign(&Tensor::zeros(&dev, &[4]).unwrap()).is_err());
}
