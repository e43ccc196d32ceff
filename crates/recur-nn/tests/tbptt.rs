//! Truncated BPTT on the GPU: an update's gradient equals the gradient of
//! the same loss computed directly over its window, including windows that
//! span two chunks (the carried state's gradient flows between them) and
//! windows reaching back to the start of the sequence (full BPTT).

mod common;

use std::ops::Range;

use common::{device, max_diff};
use recur_nn::tbptt::{Chunk, Tbptt};
use recur_nn::{
    functional as F, Layer, LinearConfig, LossReduction, Module, RecurrentConfig, Rng, Tensor, Var,
};

const T: usize = 6;
const B: usize = 2;

#[test]
fn each_update_backpropagates_exactly_its_window() {
    let Some(dev) = device() else { return };
    let mut rng = Rng::new(3);
    let rnn = RecurrentConfig::gru(3, 4).init(&dev, &mut rng).unwrap();
    let out = LinearConfig::new(4, 2).init(&dev, &mut rng).unwrap();
    let mut params = rnn.parameters();
    params.extend(out.parameters());
    let x: Vec<f32> = (0..T * B * 3).map(|_| rng.uniform(-1.0, 1.0)).collect();
    let y: Vec<f32> = (0..T * B * 2).map(|_| rng.uniform(-1.0, 1.0)).collect();
    let steps = |data: &[f32], r: Range<usize>, width: usize| {
        Tensor::from_slice(
            &dev,
            &data[r.start * B * width..r.end * B * width],
            &[r.len(), B, width],
        )
        .unwrap()
    };
    // Predictions for steps `r` from `state` (empty: zeros), and the state after.
    let run = |r: Range<usize>, state: &[Var]| {
        let o = rnn
            .forward_var(&Var::new(steps(&x, r, 3)), state.first(), None)
            .unwrap();
        (out.forward(&o.output).unwrap(), vec![o.h_n])
    };
    let grads = || -> Vec<Vec<f32>> {
        params
            .iter()
            .map(|p| p.grad().unwrap().to_vec().unwrap())
            .collect()
    };

    for (k1, k2, check) in [(2, 6, 2), (3, 3, 1), (4, 2, 1)] {
        let tbptt = Tbptt::new(k1, k2).unwrap();
        let plan = tbptt.plan(T);
        let u = &plan[check];
        // The update's gradient through the runner (no optimizer step, so
        // every update sees the same parameters).
        let mut got = Vec::new();
        let mut state = Vec::new();
        for (i, upd) in plan.iter().enumerate() {
            let forward = |r: Range<usize>, s: &Vec<Var>, l: Range<usize>| {
                let (pred, next) = run(r.clone(), s);
                let loss_sum = (!l.is_empty()).then(|| {
                    let p = F::slice(&pred, 0, l.start - r.start, l.len()).unwrap();
                    let t = Var::new(steps(&y, l.clone(), 2));
                    F::mse_loss(&p, &t, LossReduction::Sum).unwrap()
                });
                Ok(Chunk {
                    loss_sum,
                    count: l.len() * B * 2,
                    state: next,
                })
            };
            let update = |loss: &Var| {
                params.iter().for_each(Var::zero_grad);
                loss.backward()
            };
            state = tbptt.run_update(upd, &state, forward, update).unwrap().0;
            if i == check {
                got = grads();
            }
        }
        // The same loss, directly: run without gradient up to the window,
        // then over the window from the detached state.
        let window = u.chunks[0].start..u.chunks.last().unwrap().end;
        let s0 = if window.start == 0 {
            Vec::new()
        } else {
            let _g = recur_nn::no_grad();
            run(0..window.start, &[]).1
        };
        let (pred, _) = run(window.clone(), &s0);
        let p = F::slice(&pred, 0, u.loss.start - window.start, u.loss.len()).unwrap();
        let loss = F::mse_loss(
            &p,
            &Var::new(steps(&y, u.loss.clone(), 2)),
            LossReduction::Mean,
        )
        .unwrap();
        params.iter().for_each(Var::zero_grad);
        loss.backward().unwrap();
        let want = grads();
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!(
                max_diff(g, w) < 1e-5,
                "TBPTT({k1}, {k2}) update {check} ({u:?}): parameter {i} differs by {}",
                max_diff(g, w)
            );
        }
        assert!(want.iter().any(|g| g.iter().any(|v| v.abs() > 1e-4)));
    }
}
