//! The character LM of `char_lm`: embedding → recurrent layers (PyTorch's
//! LSTM/GRU/RNN, minGRU/minLSTM blocks, Mamba blocks or Mamba-2 /
//! linear-attention blocks) → linear, its loss,
//! validation and sampling.

use std::ops::Range;

use super::mixers::MixerBlock;

use anyhow::{bail, Result};
use recur::gpu::Device;
use recur::nn::{
    functional as F, no_grad, prefixed, Cell, Embedding, Layer, Linear, LossReduction, MambaBlock,
    MambaState, MinRnnBlock, Module, Recurrent, RmsNorm, Rng, Tensor, Var,
};

/// The recurrent part: PyTorch-style LSTM/GRU/RNN layers, or a stack of
/// minGRU/minLSTM blocks (pre-RMSNorm cell and MLP with residuals, Feng et
/// al. 2024) with a final RMSNorm.
pub enum Backbone {
    Classic(Recurrent),
    Min(Vec<MinRnnBlock>, RmsNorm),
    /// Residual Mamba blocks (x + Mamba(RMSNorm(x)), Gu & Dao 2023) and a
    /// final RMSNorm; batch-first inside.
    Mamba(Vec<MambaBlock>, RmsNorm),
    /// Residual blocks of Mamba-2, linear attention, RetNet or GLA (on the
    /// chunked engine) and a final RMSNorm; batch-first inside.
    Mixers(Vec<MixerBlock>, RmsNorm),
}

/// embedding → recurrent layers → linear, named as the PyTorch module with
/// submodules `embedding`, `rnn` (and `norm`) and `out` would be.
pub struct Model {
    pub embedding: Embedding,
    pub rnn: Backbone,
    pub out: Linear,
}

impl Module for Model {
    fn named_parameters(&self) -> Vec<(String, Var)> {
        let mut v = prefixed("embedding", &self.embedding);
        match &self.rnn {
            Backbone::Classic(r) => v.extend(prefixed("rnn", r)),
            Backbone::Min(blocks, norm) => {
                for (i, b) in blocks.iter().enumerate() {
                    v.extend(prefixed(&format!("rnn.{i}"), b));
                }
                v.extend(prefixed("norm", norm));
            }
            Backbone::Mamba(blocks, norm) => {
                for (i, b) in blocks.iter().enumerate() {
                    v.extend(prefixed(&format!("rnn.{i}"), b));
                }
                v.extend(prefixed("norm", norm));
            }
            Backbone::Mixers(blocks, norm) => {
                for (i, b) in blocks.iter().enumerate() {
                    v.extend(prefixed(&format!("rnn.{i}"), b));
                }
                v.extend(prefixed("norm", norm));
            }
        }
        v.extend(prefixed("out", &self.out));
        v
    }

    fn set_training(&self, training: bool) {
        if let Backbone::Classic(r) = &self.rnn {
            r.set_training(training);
        }
    }
}

impl Model {
    /// Recurrent outputs (T, B, H) for time-major `ids` (T, B) from `state`
    /// (classic: [h] or [h, c]; min: one state per block; Mamba: conv and
    /// ssm state per block; empty for zeros), and the state after the last
    /// step.
    pub fn run(&self, ids: &Tensor, state: &[Var]) -> Result<(Var, Vec<Var>)> {
        let x = self.embedding.forward(ids)?;
        match &self.rnn {
            Backbone::Classic(r) => {
                let o = r.forward_var(&x, state.first(), state.get(1))?;
                let mut next = vec![o.h_n];
                next.extend(o.c_n);
                Ok((o.output, next))
            }
            Backbone::Min(blocks, norm) => {
                let (mut x, mut next) = (x, Vec::new());
                for (i, b) in blocks.iter().enumerate() {
                    let (y, last) = b.forward_state(&x, state.get(i))?;
                    x = y;
                    next.push(last);
                }
                Ok((norm.forward(&x)?, next))
            }
            Backbone::Mamba(blocks, norm) => {
                let (mut x, mut next) = (F::swap01(&x)?, Vec::new());
                for (i, b) in blocks.iter().enumerate() {
                    let s = state.get(2 * i).zip(state.get(2 * i + 1));
                    let s = s.map(|(conv, ssm)| MambaState {
                        conv: conv.clone(),
                        ssm: ssm.clone(),
                    });
                    let (y, last) = b.forward_with_state(&x, s.as_ref())?;
                    x = y;
                    next.extend([last.conv, last.ssm]);
                }
                Ok((F::swap01(&norm.forward(&x)?)?, next))
            }
            Backbone::Mixers(blocks, norm) => {
                let (mut x, mut next) = (F::swap01(&x)?, Vec::new());
                for (i, b) in blocks.iter().enumerate() {
                    let s = state.get(2 * i).zip(state.get(2 * i + 1));
                    let (y, last) = b.forward(&x, s)?;
                    x = y;
                    next.extend(last);
                }
                Ok((F::swap01(&norm.forward(&x)?)?, next))
            }
        }
    }

    /// Shapes of the carried state's tensors, for checkpoints.
    pub fn state_shapes(&self, batch: usize, hidden: usize) -> Vec<Vec<usize>> {
        match &self.rnn {
            Backbone::Classic(r) => {
                let c = r.config();
                let n = if c.cell == Cell::Lstm { 2 } else { 1 };
                vec![vec![c.num_layers * c.directions(), batch, hidden]; n]
            }
            Backbone::Min(blocks, _) => vec![vec![batch, hidden]; blocks.len()],
            Backbone::Mamba(blocks, _) => blocks
                .iter()
                .flat_map(|b| {
                    let c = b.mixer.config();
                    [
                        vec![batch, c.d_inner(), c.d_conv],
                        vec![batch, c.d_inner(), c.d_state],
                    ]
                })
                .collect(),
            Backbone::Mixers(blocks, _) => {
                blocks.iter().flat_map(|b| b.state_shapes(batch)).collect()
            }
        }
    }

    /// Summed cross-entropy of the outputs at steps `rows` of `out` (T, B, H)
    /// against next-character targets (T·B, time-major).
    pub fn loss_sum(&self, out: &Var, rows: Range<usize>, targets: &[u32]) -> Result<Var> {
        let (b, h) = (out.shape()[1], out.shape()[2]);
        let n = rows.len() * b;
        let dev = out.value().device("char_lm")?;
        let o = F::reshape(&F::slice(out, 0, rows.start, rows.len())?, &[n, h])?;
        let tg = Tensor::from_slice_u32(&dev, &targets[rows.start * b..rows.end * b], &[n])?;
        Ok(F::cross_entropy(
            &self.out.forward(&o)?,
            &tg,
            None,
            LossReduction::Sum,
        )?)
    }
}

/// Time-major ids and next-character targets of steps `range` in each of
/// the `batch` streams of length `per_stream`.
pub fn window_ids(
    data: &[u32],
    batch: usize,
    per_stream: usize,
    range: Range<usize>,
) -> (Vec<u32>, Vec<u32>) {
    let mut ids = Vec::with_capacity(range.len() * batch);
    let mut tg = Vec::with_capacity(range.len() * batch);
    for s in range {
        for b in 0..batch {
            let i = b * per_stream + s;
            ids.push(data[i]);
            tg.push(data[i + 1]);
        }
    }
    (ids, tg)
}

/// Mean cross-entropy (nats/char) over `data`, in windows, without gradients.
pub fn evaluate(m: &Model, dev: &Device, data: &[u32], batch: usize, window: usize) -> Result<f32> {
    let per_stream = data.len() / batch;
    if per_stream < 2 {
        bail!("validation text too short for {batch} streams");
    }
    let _g = no_grad();
    m.set_training(false);
    let (mut total, mut count) = (0.0f64, 0usize);
    let mut state = Vec::new();
    let mut pos = 0;
    while pos + 1 < per_stream {
        let t = window.min(per_stream - 1 - pos);
        let (ids, tg) = window_ids(data, batch, per_stream, pos..pos + t);
        let (out, next) = m.run(&Tensor::from_slice_u32(dev, &ids, &[t, batch])?, &state)?;
        total += m.loss_sum(&out, 0..t, &tg)?.item()? as f64;
        count += t * batch;
        state = next;
        pos += t;
    }
    m.set_training(true);
    Ok((total / count as f64) as f32)
}

pub fn sample(
    m: &Model,
    dev: &Device,
    vocab: &[char],
    prompt: u32,
    n: usize,
    temperature: f32,
    rng: &mut Rng,
) -> Result<String> {
    let _g = no_grad();
    m.set_training(false);
    let mut out = String::new();
    let mut state = Vec::new();
    let mut cur = prompt;
    for _ in 0..n {
        let (o, next) = m.run(&Tensor::from_slice_u32(dev, &[cur], &[1, 1])?, &state)?;
        let logits = m.out.forward(&F::reshape(&o, &[1, o.shape()[2]])?)?;
        let scaled = F::scale(&logits, 1.0 / temperature.max(1e-3))?;
        let p = recur::gpu::ops::softmax::softmax(scaled.value())?.to_vec()?; // one readback per character
        let u = rng.next_f32();
        let mut acc = 0.0;
        cur = (p.len() - 1) as u32;
        for (i, pi) in p.iter().enumerate() {
            acc += pi;
            if u < acc {
                cur = i as u32;
                break;
            }
        }
        out.push(vocab[cur as usize]);
        state = next;
    }
    Ok(out)
}
