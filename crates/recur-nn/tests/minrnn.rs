//! minGRU / minLSTM: the parallel (log-space scan) and step (linear-space)
//! modes agree, gradients match finite differences, and the layers match a
//! PyTorch implementation of the paper's equations
//! (tools/make_min_rnn_fixtures.py).

mod common;

use std::path::PathBuf;

use common::{assert_matches, data, device, gradcheck, input, max_diff, Fixture};
use recur_nn::checkpoint::Checkpoint;
use recur_nn::{
    functional as F, Layer, MinCell, MinRnnBlock, MinRnnConfig, Module, Rng, Tensor, Var,
};
use safetensors::SafeTensors;

#[test]
fn step_mode_reproduces_the_parallel_scan() {
    let Some(dev) = device() else { return };
    let (b, t, i, h) = (3, 9, 5, 6);
    for cell in [MinCell::Gru, MinCell::Lstm] {
        for batch_first in [true, false] {
            let mut rng = Rng::new(4);
            let m = MinRnnConfig {
                cell,
                batch_first,
                ..MinRnnConfig::min_gru(i, h)
            }
            .init(&dev, &mut rng)
            .unwrap();
            let xs = data(b * t * i, 5);
            // A positive initial state, and one with both signs (minRNN
            // states from the parallel form are positive, but a user's h0
            // need not be).
            let positive: Vec<f32> = data(b * h, 6).iter().map(|v| v.abs() + 0.1).collect();
            let signed = data(b * h, 7);
            assert!(signed.iter().any(|&v| v < -0.1));
            let shape = if batch_first { [b, t, i] } else { [t, b, i] };
            let x = Var::new(Tensor::from_slice(&dev, &xs, &shape).unwrap());
            for (with_h0, h0) in [(false, &positive), (true, &positive), (true, &signed)] {
                let h0v = Var::new(Tensor::from_slice(&dev, h0, &[b, h]).unwrap());
                let h0r = with_h0.then_some(&h0v);
                let (out, last) = m.forward_with_state(&x, h0r).unwrap();
                let out = out.to_vec().unwrap();
                let mut state = h0r.cloned();
                for s in 0..t {
                    let xt = F::reshape(
                        &F::slice(&x, if batch_first { 1 } else { 0 }, s, 1).unwrap(),
                        &[b, i],
                    )
                    .unwrap();
                    let hs = m.step(&xt, state.as_ref()).unwrap();
                    let got = hs.to_vec().unwrap();
                    for bi in 0..b {
                        let want = if batch_first {
                            &out[(bi * t + s) * h..][..h]
                        } else {
                            &out[(s * b + bi) * h..][..h]
                        };
                        let d = max_diff(&got[bi * h..][..h], want);
                        assert!(
                            d <= 1e-5,
                            "{cell:?} batch_first {batch_first} h0 {:?} step {s}: {d}",
                            with_h0.then_some(&h0[..2])
                        );
                    }
                    state = Some(hs);
                }
                let d = max_diff(&state.unwrap().to_vec().unwrap(), &last.to_vec().unwrap());
                assert!(d <= 1e-5, "{cell:?}: final state {d}");
            }
        }
    }
}

#[test]
fn gradients_match_finite_differences() {
    let Some(dev) = device() else { return };
    for cell in [MinCell::Gru, MinCell::Lstm] {
        let m = MinRnnConfig {
            cell,
            ..MinRnnConfig::min_gru(3, 4)
        }
        .init(&dev, &mut Rng::new(8))
        .unwrap();
        // h0 of both signs (the linear part of the recurrence).
        let h0 = input(&[2, 4], 31);
        gradcheck(
            &dev,
            &format!("{cell:?}"),
            &[input(&[2, 6, 3], 30), h0],
            |v| {
                let (out, last) = m.forward_with_state(&v[0], Some(&v[1]))?;
                let flat = F::reshape(&out, &[out.value().numel()])?;
                F::concat(&[&flat, &F::reshape(&last, &[8])?], 0)
            },
        );
        // The block (norms, residuals, MLP) on top.
        let block = MinRnnBlock::new(&dev, cell, 4, true, &mut Rng::new(9)).unwrap();
        gradcheck(
            &dev,
            &format!("{cell:?} block"),
            &[input(&[2, 5, 4], 32)],
            |v| block.forward(&v[0]),
        );
        assert!(block.named_parameters().len() >= 8);
    }
}

#[test]
fn min_rnns_match_pytorch() {
    let Some(dev) = device() else { return };
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/min_rnn.safetensors");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let ck = Checkpoint::from_bytes(&bytes).unwrap();
    let f = Fixture {
        st: SafeTensors::deserialize(&bytes).unwrap(),
    };
    for (name, cell) in [("mingru", MinCell::Gru), ("minlstm", MinCell::Lstm)] {
        let m = MinRnnConfig {
            cell,
            ..MinRnnConfig::min_gru(7, 11)
        }
        .init(&dev, &mut Rng::new(1))
        .unwrap();
        m.load_parameters(&dev, &ck, &format!("{name}.")).unwrap();
        let x = Var::param(f.tensor(&dev, &format!("{name}.x")).unwrap());
        let h0 = Var::param(f.tensor(&dev, &format!("{name}.h0")).unwrap());
        let (out, last) = m.forward_with_state(&x, Some(&h0)).unwrap();
        assert_matches(
            &format!("{name} out"),
            &out.to_vec().unwrap(),
            &f.get(&format!("{name}.out")).unwrap().0,
        );
        let w = Var::new(f.tensor(&dev, &format!("{name}.w_out")).unwrap());
        let wl = Var::new(f.tensor(&dev, &format!("{name}.w_last")).unwrap());
        let loss = F::add(
            &F::sum_all(&F::mul(&out, &w).unwrap()).unwrap(),
            &F::sum_all(&F::mul(&last, &wl).unwrap()).unwrap(),
        )
        .unwrap();
        loss.backward().unwrap();
        let mut grads = vec![("x".to_string(), x.clone()), ("h0".to_string(), h0.clone())];
        grads.extend(m.named_parameters());
        for (g, v) in grads {
            assert_matches(
                &format!("{name} grad.{g}"),
                &v.grad().unwrap().to_vec().unwrap(),
                &f.get(&format!("{name}.grad.{g}")).unwrap().0,
            );
        }
    }
}
