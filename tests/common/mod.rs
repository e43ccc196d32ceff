//! A tiny LSTM language-model training run shared by the root tests:
//! embedding → 2-layer LSTM (dropout) → linear → cross-entropy, backward by
//! hand, AdamW with global-norm clipping, state carried across windows.
#![allow(dead_code)]

use recur::gpu::ops::{embedding, gemm, reduce, softmax};
use recur::gpu::Device;
use recur::nn::{clip_grad_norm, Adam, AdamConfig, Recurrent, RecurrentConfig, Rng, Tensor};

pub const V: usize = 6;
pub const E: usize = 5;
pub const H: usize = 10;
pub const T: usize = 7;
pub const B: usize = 3;

pub struct Run {
    pub table: Tensor,
    pub rnn: Recurrent,
    pub w: Tensor,
    pub bias: Tensor,
    pub opt: Adam,
    pub rng: Rng,
    pub h: Option<Tensor>,
    pub c: Option<Tensor>,
    pub step: usize,
}

pub fn params(r: &Run) -> Vec<(String, &Tensor)> {
    let mut p = vec![("embedding.weight".to_string(), &r.table)];
    p.extend(
        r.rnn
            .named_parameters()
            .into_iter()
            .map(|(n, t)| (format!("rnn.{n}"), t)),
    );
    p.push(("out.weight".into(), &r.w));
    p.push(("out.bias".into(), &r.bias));
    p
}

pub fn fresh(dev: &Device) -> Run {
    let mut rng = Rng::new(42);
    let table = Tensor::randn(dev, &[V, E], 0.0, 1.0, &mut rng).unwrap();
    let rnn = RecurrentConfig {
        num_layers: 2,
        dropout: 0.2,
        ..RecurrentConfig::lstm(E, H)
    }
    .init(dev, &mut rng)
    .unwrap();
    let w = Tensor::rand(dev, &[V, H], -0.3, 0.3, &mut rng).unwrap();
    let bias = Tensor::zeros(dev, &[V]).unwrap();
    let mut run = Run {
        table,
        rnn,
        w,
        bias,
        opt: Adam::new(dev, AdamConfig::adamw(0.01), &[]).unwrap(),
        rng,
        h: None,
        c: None,
        step: 0,
    };
    let ps: Vec<&Tensor> = params(&run).into_iter().map(|(_, t)| t).collect();
    run.opt = Adam::new(dev, AdamConfig::adamw(0.01), &ps).unwrap();
    run
}

/// One step on synthetic ids that depend on the step number.
pub fn train_step(dev: &Device, r: &mut Run) -> f32 {
    let ids: Vec<u32> = (0..T * B)
        .map(|i| ((i * 7 + r.step * 3) % V) as u32)
        .collect();
    let tg: Vec<u32> = (0..T * B)
        .map(|i| ((i * 7 + r.step * 3 + 1) % V) as u32)
        .collect();
    train_on(dev, r, &ids, &tg)
}

/// One training step on time-major `ids` (T, B) with next-token targets
/// `tg`: forward, backward, clipping, AdamW; returns the loss.
pub fn train_on(dev: &Device, r: &mut Run, ids: &[u32], tg: &[u32]) -> f32 {
    let ids = Tensor::from_slice_u32(dev, ids, &[T, B]).unwrap();
    let tg = Tensor::from_slice_u32(dev, tg, &[T * B]).unwrap();
    let x = embedding::embedding(&r.table, &ids).unwrap();
    let (out, tape) = r
        .rnn
        .forward_train(&x, r.h.as_ref(), r.c.as_ref(), &mut r.rng)
        .unwrap();
    let flat = out.output.reshape(&[T * B, H]).unwrap();
    let ce = softmax::cross_entropy(
        &gemm::linear(&flat, &r.w, Some(&r.bias)).unwrap(),
        &tg,
        None,
        Default::default(),
    )
    .unwrap();
    let dw = gemm::Gemm {
        trans_a: true,
        ..Default::default()
    }
    .run(&ce.grad, &flat, None)
    .unwrap();
    let db = reduce::sum(&ce.grad, 0).unwrap();
    let g = r
        .rnn
        .backward(
            &tape,
            &gemm::matmul(&ce.grad, &r.w)
                .unwrap()
                .reshape(&[T, B, H])
                .unwrap(),
            None,
            None,
        )
        .unwrap();
    let dtable = Tensor::zeros(dev, &[V, E]).unwrap();
    embedding::embedding_backward_into(&dtable, &ids, &g.dx).unwrap();
    let mut grads = vec![dtable];
    grads.extend(g.params.into_iter().map(|(_, t)| t));
    grads.extend([dw, db]);
    let grefs: Vec<&Tensor> = grads.iter().collect();
    let clip = clip_grad_norm(&grefs, 0.5).unwrap();
    let ps: Vec<&Tensor> = params(r).into_iter().map(|(_, t)| t).collect();
    let mut opt = r.opt.clone();
    opt.step(&ps, &grefs, Some(&clip.scale)).unwrap();
    r.opt = opt;
    (r.h, r.c) = (Some(out.h_n), out.c_n);
    r.step += 1;
    ce.loss.item().unwrap()
}

/// A device, or `None` when no adapter exists (a failure under CI=true).
pub fn device() -> Option<Device> {
    match Device::new() {
        Ok(d) => Some(d),
        Err(e) => {
            assert_ne!(
                std::env::var("CI").as_deref(),
                Ok("true"),
                "CI=true but no adapter: {e}"
            );
            None
        }
    }
}
