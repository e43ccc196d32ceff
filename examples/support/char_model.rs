//! `char_lm`'s data windows, loss, validation and sampling around a
//! [`SequenceLm`] (embedding → recurrent layers of any family → head),
//! which carries its state as one [`State`].

use std::ops::Range;

use anyhow::{bail, Result};
use recur::gpu::Device;
use recur::nn::{
    functional as F, no_grad, LossReduction, Module, Rng, SequenceLm, State, Tensor, Var,
};

/// Batch-first ids (B, T) and next-character targets of steps `range` in
/// each of the `batch` streams of length `per_stream`.
pub fn window_ids(
    data: &[u32],
    batch: usize,
    per_stream: usize,
    range: Range<usize>,
) -> (Vec<u32>, Vec<u32>) {
    let mut ids = Vec::with_capacity(range.len() * batch);
    let mut tg = Vec::with_capacity(range.len() * batch);
    for b in 0..batch {
        for s in range.clone() {
            let i = b * per_stream + s;
            ids.push(data[i]);
            tg.push(data[i + 1]);
        }
    }
    (ids, tg)
}

/// Summed cross-entropy of the features (B, T, H) at steps `rows` against
/// the window's batch-first targets (B·T).
pub fn loss_sum(
    m: &SequenceLm,
    features: &Var,
    rows: Range<usize>,
    targets: &[u32],
) -> Result<Var> {
    let (b, t) = (features.shape()[0], features.shape()[1]);
    let dev = features.value().device("char_lm")?;
    let f = F::slice(features, 1, rows.start, rows.len())?;
    let tg: Vec<u32> = (0..b)
        .flat_map(|i| targets[i * t + rows.start..i * t + rows.end].to_vec())
        .collect();
    let tg = Tensor::from_slice_u32(&dev, &tg, &[tg.len()])?;
    Ok(F::cross_entropy(
        &m.logits_rows(&f)?,
        &tg,
        None,
        LossReduction::Sum,
    )?)
}

/// Mean cross-entropy (nats/char) over `data`, in windows, without gradients.
pub fn evaluate(
    m: &SequenceLm,
    dev: &Device,
    data: &[u32],
    batch: usize,
    window: usize,
) -> Result<f32> {
    let per_stream = data.len() / batch;
    if per_stream < 2 {
        bail!("validation text too short for {batch} streams");
    }
    let _g = no_grad();
    m.set_training(false);
    let (mut total, mut count) = (0.0f64, 0usize);
    let mut state: Option<State> = None;
    let mut pos = 0;
    while pos + 1 < per_stream {
        let t = window.min(per_stream - 1 - pos);
        let (ids, tg) = window_ids(data, batch, per_stream, pos..pos + t);
        let ids = Tensor::from_slice_u32(dev, &ids, &[batch, t])?;
        let (out, next) = m.features(&ids, state.as_ref())?;
        total += loss_sum(m, &out, 0..t, &tg)?.item()? as f64;
        count += t * batch;
        state = Some(next);
        pos += t;
    }
    m.set_training(true);
    Ok((total / count as f64) as f32)
}

/// `n` characters sampled after `prompt` at `temperature` (the sampler
/// `recur-serve` uses too).
pub fn sample(
    m: &SequenceLm,
    dev: &Device,
    vocab: &[char],
    prompt: u32,
    n: usize,
    temperature: f32,
    rng: &mut Rng,
) -> Result<String> {
    m.set_training(false);
    let ids = m.generate(dev, &[prompt], n, (temperature, None), rng)?;
    m.set_training(true);
    Ok(ids.iter().map(|&i| vocab[i as usize]).collect())
}
