//! The synthetic long-memory tasks at CI scale: an LSTM solves short
//! versions of the adding problem and the copy task through the autograd
//! tape (the full-size runs are `examples/adding.rs` and `examples/copy.rs`).

mod common;

use recur::nn::tasks::{adding_problem, CopyTask};
use recur::nn::{
    clip_grad_norm_params, functional as F, no_grad, Adam, AdamConfig, Embedding, Layer, Linear,
    LinearConfig, LossReduction, Module, Optimizer, Recurrent, RecurrentConfig, Rng, Tensor, Var,
};

/// One optimizer step on `loss` over `params`, with clipping at 1.
fn step(loss: &Var, params: &[Var], opt: &mut impl Optimizer) {
    params.iter().for_each(Var::zero_grad);
    loss.backward().unwrap();
    let clip = clip_grad_norm_params(params, 1.0).unwrap();
    opt.step_params(params, Some(&clip.scale)).unwrap();
}

#[test]
fn an_lstm_learns_a_short_adding_problem() {
    let Some(dev) = common::device() else { return };
    let (t, b, h) = (16, 32, 24);
    let mut rng = Rng::new(3);
    let rnn: Recurrent = RecurrentConfig::lstm(2, h).init(&dev, &mut rng).unwrap();
    let out: Linear = LinearConfig::new(h, 1).init(&dev, &mut rng).unwrap();
    let mut params = rnn.parameters();
    params.extend(out.parameters());
    let mut opt = Adam::for_params(AdamConfig::adam(1e-2), &params).unwrap();
    let predict = |x: &[f32], b: usize| {
        let x = Var::new(Tensor::from_slice(&dev, x, &[t, b, 2]).unwrap());
        let h_n = rnn.forward_var(&x, None, None).unwrap().h_n;
        out.forward(&F::reshape(&h_n, &[b, h]).unwrap()).unwrap()
    };
    let (tx, ty) = adding_problem(t, 256, &mut Rng::new(99));
    let test_y = Var::new(Tensor::from_slice(&dev, &ty, &[256, 1]).unwrap());
    let test = || {
        let _g = no_grad();
        F::mse_loss(&predict(&tx, 256), &test_y, LossReduction::Mean)
            .unwrap()
            .item()
            .unwrap()
    };
    let before = test();
    for _ in 0..400 {
        let (x, y) = adding_problem(t, b, &mut rng);
        let y = Var::new(Tensor::from_slice(&dev, &y, &[b, 1]).unwrap());
        let loss = F::mse_loss(&predict(&x, b), &y, LossReduction::Mean).unwrap();
        step(&loss, &params, &mut opt);
    }
    let after = test();
    // Predicting the mean scores ~0.167.
    assert!(after < 0.02, "test MSE {before} -> {after}");
}

#[test]
fn an_lstm_learns_a_short_copy_task() {
    let Some(dev) = common::device() else { return };
    let task = CopyTask {
        symbols: 4,
        length: 3,
        delay: 6,
    };
    let (s, b, h, v) = (task.seq_len(), 32, 32, task.vocab());
    let mut rng = Rng::new(5);
    let emb = Embedding::new(&dev, v, 8, &mut rng).unwrap();
    let rnn: Recurrent = RecurrentConfig::lstm(8, h).init(&dev, &mut rng).unwrap();
    let out: Linear = LinearConfig::new(h, v).init(&dev, &mut rng).unwrap();
    let mut params = emb.parameters();
    params.extend(rnn.parameters());
    params.extend(out.parameters());
    let mut opt = Adam::for_params(AdamConfig::adam(1e-2), &params).unwrap();
    let logits = |x: &[u32], b: usize| {
        let ids = Tensor::from_slice_u32(&dev, x, &[s, b]).unwrap();
        let o = rnn
            .forward_var(&emb.forward(&ids).unwrap(), None, None)
            .unwrap()
            .output;
        out.forward(&F::reshape(&o, &[s * b, h]).unwrap()).unwrap()
    };
    let (tx, ty) = task.batch(128, &mut Rng::new(77));
    let accuracy = || {
        let _g = no_grad();
        let host = logits(&tx, 128).to_vec().unwrap();
        let rows: Vec<usize> = task
            .recall()
            .flat_map(|t| (0..128).map(move |k| t * 128 + k))
            .collect();
        let right = rows
            .iter()
            .filter(|&&r| {
                let row = &host[r * v..(r + 1) * v];
                let arg = (0..v).fold(0, |m, i| if row[i] > row[m] { i } else { m });
                arg as u32 == ty[r]
            })
            .count();
        right as f32 / rows.len() as f32
    };
    let before = accuracy();
    for _ in 0..600 {
        let (x, y) = task.batch(b, &mut rng);
        let y = Tensor::from_slice_u32(&dev, &y, &[s * b]).unwrap();
        let loss = F::cross_entropy(&logits(&x, b), &y, None, LossReduction::Mean).unwrap();
        step(&loss, &params, &mut opt);
    }
    let after = accuracy();
    // Chance is 1/4 on the recalled symbols.
    assert!(after > 0.9, "recall accuracy {before} -> {after}");
}
