//! End to end at small scale: embedding → LSTM → linear → cross-entropy,
//! backward by hand, AdamW with global-norm clipping, truncated BPTT with
//! the state carried across windows. A periodic sequence must be learnt.

mod common;

use recur::gpu::ops::{embedding, gemm, reduce, softmax};
use recur::nn::{clip_grad_norm, Adam, AdamConfig, RecurrentConfig, Rng, Tensor};

#[test]
fn a_small_lstm_language_model_learns_a_periodic_sequence() {
    let Some(dev) = common::device() else { return };
    let (v, e, h, t, b) = (5usize, 8usize, 24usize, 12usize, 4usize);
    let pattern = [0u32, 1, 2, 3, 4, 3, 2, 1];
    let seq: Vec<u32> = (0..4000).map(|i| pattern[i % pattern.len()]).collect();
    let mut rng = Rng::new(3);
    let table = Tensor::randn(&dev, &[v, e], 0.0, 1.0, &mut rng).unwrap();
    let rnn = RecurrentConfig {
        num_layers: 2,
        ..RecurrentConfig::lstm(e, h)
    }
    .init(&dev, &mut rng)
    .unwrap();
    let w = Tensor::rand(&dev, &[v, h], -0.2, 0.2, &mut rng).unwrap();
    let bias = Tensor::zeros(&dev, &[v]).unwrap();
    let params = || {
        let mut p = vec![&table];
        p.extend(rnn.named_parameters().into_iter().map(|(_, t)| t));
        p.extend([&w, &bias]);
        p
    };
    let mut opt = Adam::new(&dev, AdamConfig::adamw(0.02), &params()).unwrap();
    let (mut hs, mut cs) = (None, None);
    let per_stream = seq.len() / b;
    let mut losses = Vec::new();
    for step in 0..60 {
        let pos = (step * t) % (per_stream - t - 1);
        if pos < t {
            (hs, cs) = (None, None);
        }
        let mut ids = Vec::new();
        let mut tg = Vec::new();
        for s in 0..t {
            for k in 0..b {
                ids.push(seq[k * per_stream + pos + s]);
                tg.push(seq[k * per_stream + pos + s + 1]);
            }
        }
        let ids = Tensor::from_slice_u32(&dev, &ids, &[t, b]).unwrap();
        let tg = Tensor::from_slice_u32(&dev, &tg, &[t * b]).unwrap();
        let x = embedding::embedding(&table, &ids).unwrap();
        let (out, tape) = rnn
            .forward_train(&x, hs.as_ref(), cs.as_ref(), &mut rng)
            .unwrap();
        let flat = out.output.reshape(&[t * b, h]).unwrap();
        let logits = gemm::linear(&flat, &w, Some(&bias)).unwrap();
        let ce = softmax::cross_entropy(&logits, &tg, None, Default::default()).unwrap();
        let dw = gemm::Gemm {
            trans_a: true,
            ..Default::default()
        }
        .run(&ce.grad, &flat, None)
        .unwrap();
        let db = reduce::sum(&ce.grad, 0).unwrap();
        let dflat = gemm::matmul(&ce.grad, &w)
            .unwrap()
            .reshape(&[t, b, h])
            .unwrap();
        let g = rnn.backward(&tape, &dflat, None, None).unwrap();
        let dtable = Tensor::zeros(&dev, &[v, e]).unwrap();
        embedding::embedding_backward_into(&dtable, &ids, &g.dx).unwrap();
        let mut grads = vec![dtable];
        grads.extend(g.params.into_iter().map(|(_, t)| t));
        grads.extend([dw, db]);
        let grefs: Vec<&Tensor> = grads.iter().collect();
        let clip = clip_grad_norm(&grefs, 1.0).unwrap();
        opt.step(&params(), &grefs, Some(&clip.scale)).unwrap();
        (hs, cs) = (Some(out.h_n), out.c_n);
        losses.push(ce.loss.item().unwrap());
    }
    let first = losses[..5].iter().sum::<f32>() / 5.0;
    let last = losses[losses.len() - 5..].iter().sum::<f32>() / 5.0;
    assert!(losses.iter().all(|l| l.is_finite()));
    assert!(first > 1.0, "starts near ln 5: {first}");
    assert!(
        last < 0.3,
        "did not learn the pattern: {first} -> {last} ({losses:?})"
    );
}
