//! A tiny LSTM language-model training run shared by the root tests:
//! embedding → 2-layer LSTM (dropout) → linear → cross-entropy through the
//! autograd tape, AdamW with global-norm clipping, state carried across
//! windows.
#![allow(dead_code)]

use recur::gpu::Device;
use recur::nn::{
    clip_grad_norm_params, functional as F, prefixed, Adam, AdamConfig, Embedding, Layer, Linear,
    LinearConfig, Module, Optimizer, Recurrent, RecurrentConfig, Rng, Tensor, Var,
};

pub const V: usize = 6;
pub const E: usize = 5;
pub const H: usize = 10;
pub const T: usize = 7;
pub const B: usize = 3;

pub struct Model {
    pub embedding: Embedding,
    pub rnn: Recurrent,
    pub out: Linear,
}

impl Module for Model {
    fn named_parameters(&self) -> Vec<(String, Var)> {
        let mut p = prefixed("embedding", &self.embedding);
        p.extend(prefixed("rnn", &self.rnn));
        p.extend(prefixed("out", &self.out));
        p
    }

    fn set_training(&self, training: bool) {
        self.rnn.set_training(training);
    }
}

pub struct Run {
    pub model: Model,
    pub opt: Adam,
    pub h: Option<Var>,
    pub c: Option<Var>,
    pub step: usize,
}

pub fn fresh(dev: &Device) -> Run {
    let mut rng = Rng::new(42);
    let model = Model {
        embedding: Embedding::new(dev, V, E, &mut rng).unwrap(),
        rnn: RecurrentConfig {
            num_layers: 2,
            dropout: 0.2,
            ..RecurrentConfig::lstm(E, H)
        }
        .init(dev, &mut rng)
        .unwrap(),
        out: LinearConfig::new(H, V).init(dev, &mut rng).unwrap(),
    };
    let opt = Adam::for_params(AdamConfig::adamw(0.01), &model.parameters()).unwrap();
    Run {
        model,
        opt,
        h: None,
        c: None,
        step: 0,
    }
}

/// Synthetic ids and next-token targets that depend on the step number.
pub fn step_data(step: usize) -> (Vec<u32>, Vec<u32>) {
    let ids = (0..T * B)
        .map(|i| ((i * 7 + step * 3) % V) as u32)
        .collect();
    let tg = (0..T * B)
        .map(|i| ((i * 7 + step * 3 + 1) % V) as u32)
        .collect();
    (ids, tg)
}

/// One step on [`step_data`].
pub fn train_step(dev: &Device, r: &mut Run) -> f32 {
    let (ids, tg) = step_data(r.step);
    train_on(dev, r, &ids, &tg)
}

/// One training step on time-major `ids` (T, B) with next-token targets
/// `tg`: forward, backward, clipping and AdamW, recorded without readback;
/// returns the loss var.
pub fn record_step(dev: &Device, r: &mut Run, ids: &[u32], tg: &[u32]) -> Var {
    let ids = Tensor::from_slice_u32(dev, ids, &[T, B]).unwrap();
    let tg = Tensor::from_slice_u32(dev, tg, &[T * B]).unwrap();
    let m = &r.model;
    let x = m.embedding.forward(&ids).unwrap();
    let o = m.rnn.forward_var(&x, r.h.as_ref(), r.c.as_ref()).unwrap();
    let logits = m.out.forward(&o.output).unwrap();
    let logits = F::reshape(&logits, &[T * B, V]).unwrap();
    let loss = F::cross_entropy(&logits, &tg, None, Default::default()).unwrap();
    m.zero_grad();
    loss.backward().unwrap();
    let params = m.parameters();
    let clip = clip_grad_norm_params(&params, 0.5).unwrap();
    r.opt.step_params(&params, Some(&clip.scale)).unwrap();
    // Truncated BPTT: the next window starts from this state, without history.
    r.h = Some(o.h_n.detach());
    r.c = o.c_n.map(|c| c.detach());
    r.step += 1;
    loss
}

/// [`record_step`], then the loss read back.
pub fn train_on(dev: &Device, r: &mut Run, ids: &[u32], tg: &[u32]) -> f32 {
    record_step(dev, r, ids, tg).item().unwrap()
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
