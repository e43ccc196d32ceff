//! The main job: a character-level language model (embedding → 2-layer
//! LSTM → linear) trained on the GPU with AdamW, gradient clipping and
//! truncated BPTT, then sampled one character at a time.
//!
//! ```text
//! cargo run --release --example char_lm                      # bundled corpus
//! cargo run --release --example char_lm -- --data ../shared/data/tinyshakespeare.txt --steps 2000
//! ```
//!
//! The bundled corpus is recur's own source code (embedded at build time).
//! Until the autograd tape lands, the backward is written out by hand:
//! cross-entropy → linear → recurrent layers → embedding.

use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use recur::gpu::ops::{embedding, gemm, reduce, softmax};
use recur::gpu::Device;
use recur::nn::checkpoint::{self, Checkpoint};
use recur::nn::{
    clip_grad_norm, Adam, AdamConfig, Cell, LrSchedule, Recurrent, RecurrentConfig, Rng, Tensor,
};

/// recur's own sources: text the project owns.
const BUNDLED: &[&str] = &[
    include_str!("../crates/recur-gpu/src/record.rs"),
    include_str!("../crates/recur-gpu/src/kernel.rs"),
    include_str!("../crates/recur-gpu/src/device.rs"),
    include_str!("../crates/recur-gpu/src/tensor.rs"),
    include_str!("../crates/recur-gpu/src/ops/rnn/mod.rs"),
    include_str!("../crates/recur-gpu/src/ops/rnn/backward.rs"),
    include_str!("../crates/recur-nn/src/recurrent.rs"),
    include_str!("../shaders/rnn.wgsl"),
    include_str!("../shaders/gemm.wgsl"),
    include_str!("../README.md"),
];

#[derive(Parser)]
#[command(about = "Train a character-level language model with recur")]
struct Args {
    /// UTF-8 text to train on (default: recur's own sources).
    #[arg(long)]
    data: Option<std::path::PathBuf>,
    /// Recurrent cell: lstm, gru or rnn.
    #[arg(long, default_value = "lstm")]
    model: String,
    /// Optimizer steps.
    #[arg(long, default_value_t = 300)]
    steps: u64,
    /// Hidden size of each recurrent layer.
    #[arg(long, default_value_t = 128)]
    hidden: usize,
    /// Embedding width.
    #[arg(long, default_value_t = 64)]
    embed: usize,
    /// Parallel streams (batch).
    #[arg(long, default_value_t = 16)]
    batch: usize,
    /// Truncated-BPTT window: steps backpropagated per update (k1 = k2).
    #[arg(long, default_value_t = 64)]
    bptt: usize,
    /// Peak learning rate (AdamW, linear warm-up then cosine decay).
    #[arg(long, default_value_t = 3e-3)]
    lr: f32,
    /// Clip the global gradient norm to this.
    #[arg(long, default_value_t = 1.0)]
    clip: f32,
    /// Validation every this many steps.
    #[arg(long, default_value_t = 100)]
    eval_every: u64,
    /// Characters to sample at the end.
    #[arg(long, default_value_t = 300)]
    sample: usize,
    /// Sampling temperature.
    #[arg(long, default_value_t = 0.8)]
    temperature: f32,
    /// Seed of every random choice.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Write a checkpoint (safetensors, atomic) here every `--checkpoint-every` steps.
    #[arg(long)]
    checkpoint: Option<std::path::PathBuf>,
    /// Steps between checkpoints.
    #[arg(long, default_value_t = 100)]
    checkpoint_every: u64,
    /// Continue from the `--checkpoint` file.
    #[arg(long)]
    resume: bool,
    /// Stop (after checkpointing) at this step, as an interruption would;
    /// `--resume` continues the same schedule.
    #[arg(long)]
    stop_at: Option<u64>,
}

/// The recurrent state carried between windows: h_n and, for LSTM, c_n.
type State = (Option<Tensor>, Option<Tensor>);

struct Model {
    table: Tensor,  // (V, E)
    rnn: Recurrent, // E -> H, 2 layers
    w_out: Tensor,  // (V, H)
    b_out: Tensor,  // (V)
}

impl Model {
    /// Parameters with the names PyTorch gives a module with submodules
    /// `embedding`, `rnn` and `out`.
    fn named(&self) -> Vec<(String, &Tensor)> {
        let mut v = vec![("embedding.weight".to_string(), &self.table)];
        v.extend(
            self.rnn
                .named_parameters()
                .into_iter()
                .map(|(n, t)| (format!("rnn.{n}"), t)),
        );
        v.push(("out.weight".into(), &self.w_out));
        v.push(("out.bias".into(), &self.b_out));
        v
    }

    fn params(&self) -> Vec<&Tensor> {
        self.named().into_iter().map(|(_, t)| t).collect()
    }

    fn load(&mut self, dev: &Device, ck: &Checkpoint) -> Result<()> {
        let shapes: Vec<(String, Vec<usize>)> = self
            .named()
            .into_iter()
            .map(|(n, t)| (n, t.shape().to_vec()))
            .collect();
        for (name, shape) in shapes {
            let t = ck.tensor(dev, &name, &shape)?;
            match name.as_str() {
                "embedding.weight" => self.table = t,
                "out.weight" => self.w_out = t,
                "out.bias" => self.b_out = t,
                rnn => self.rnn.set_parameter(rnn.trim_start_matches("rnn."), t)?,
            }
        }
        Ok(())
    }
}

/// Everything needed to continue exactly where a run stopped.
struct Progress<'a> {
    step: u64,
    pos: usize,
    tokens: usize,
    rng: &'a Rng,
    state: &'a State,
}

fn save_checkpoint(
    path: &std::path::Path,
    m: &Model,
    opt: &Adam,
    vocab: &[char],
    p: Progress,
) -> Result<()> {
    let mut tensors = m.named();
    for (i, (mm, vv)) in opt.moments().iter().enumerate() {
        tensors.push((format!("optim.m.{i}"), mm));
        tensors.push((format!("optim.v.{i}"), vv));
    }
    if let Some(h) = &p.state.0 {
        tensors.push(("state.h".into(), h));
    }
    if let Some(c) = &p.state.1 {
        tensors.push(("state.c".into(), c));
    }
    let meta = std::collections::HashMap::from([
        ("step".to_string(), p.step.to_string()),
        ("pos".to_string(), p.pos.to_string()),
        ("tokens".to_string(), p.tokens.to_string()),
        ("rng".to_string(), p.rng.state().to_string()),
        ("optim.steps".to_string(), opt.steps().to_string()),
        ("vocab".to_string(), vocab.iter().collect::<String>()),
    ]);
    checkpoint::save(path, &tensors, &meta)?;
    Ok(())
}

/// Forward and backward over one window; returns the loss tensor, the final
/// state (carried to the next window without backpropagation) and the
/// gradients in `Model::params` order.
fn train_window(
    m: &Model,
    dev: &Device,
    ids: &Tensor,
    targets: &Tensor,
    state: State,
    rng: &mut Rng,
) -> Result<(Tensor, State, Vec<Tensor>)> {
    let (t, b) = (ids.shape()[0], ids.shape()[1]);
    let x = embedding::embedding(&m.table, ids)?; // (T, B, E)
    let (out, tape) = m
        .rnn
        .forward_train(&x, state.0.as_ref(), state.1.as_ref(), rng)?;
    let h = m.rnn.config().hidden_size;
    let hs = out.output.reshape(&[t * b, h])?;
    let logits = gemm::linear(&hs, &m.w_out, Some(&m.b_out))?; // (T·B, V)
    let ce = softmax::cross_entropy(
        &logits,
        &targets.reshape(&[t * b])?,
        None,
        Default::default(),
    )?;
    // Linear backward: dW = dYᵀ X, db = Σ dY, dX = dY W.
    let d_w = gemm::Gemm {
        trans_a: true,
        ..Default::default()
    }
    .run(&ce.grad, &hs, None)?;
    let d_b = reduce::sum(&ce.grad, 0)?;
    let d_hs = gemm::matmul(&ce.grad, &m.w_out)?.reshape(&[t, b, h])?;
    let g = m.rnn.backward(&tape, &d_hs, None, None)?;
    let d_table = Tensor::zeros(dev, m.table.shape())?;
    embedding::embedding_backward_into(&d_table, ids, &g.dx)?;
    let mut grads = vec![d_table];
    grads.extend(g.params.into_iter().map(|(_, t)| t));
    grads.extend([d_w, d_b]);
    Ok((ce.loss, (Some(out.h_n), out.c_n), grads))
}

/// Mean cross-entropy (nats/char) over `data`, in windows, without gradients.
fn evaluate(m: &Model, dev: &Device, data: &[u32], batch: usize, window: usize) -> Result<f32> {
    let per_stream = data.len() / batch;
    if per_stream < 2 {
        bail!("validation text too short for {batch} streams");
    }
    let (mut total, mut count) = (0.0f64, 0usize);
    let (mut h, mut c) = (None, None);
    let mut pos = 0;
    while pos + 1 < per_stream {
        let t = window.min(per_stream - 1 - pos);
        let (ids, tg) = window_ids(data, batch, per_stream, pos, t);
        let ids = Tensor::from_slice_u32(dev, &ids, &[t, batch])?;
        let tg = Tensor::from_slice_u32(dev, &tg, &[t * batch])?;
        let x = embedding::embedding(&m.table, &ids)?;
        let out = m.rnn.forward(&x, h.as_ref(), c.as_ref())?;
        let logits = gemm::linear(
            &out.output
                .reshape(&[t * batch, m.rnn.config().hidden_size])?,
            &m.w_out,
            Some(&m.b_out),
        )?;
        let ce = softmax::cross_entropy(&logits, &tg, None, Default::default())?;
        total += ce.loss.item()? as f64 * (t * batch) as f64;
        count += t * batch;
        (h, c) = (Some(out.h_n), out.c_n);
        pos += t;
    }
    Ok((total / count as f64) as f32)
}

/// Time-major ids and next-character targets of a window starting at `pos`
/// in each of the `batch` streams of length `per_stream`.
fn window_ids(
    data: &[u32],
    batch: usize,
    per_stream: usize,
    pos: usize,
    t: usize,
) -> (Vec<u32>, Vec<u32>) {
    let mut ids = Vec::with_capacity(t * batch);
    let mut tg = Vec::with_capacity(t * batch);
    for s in 0..t {
        for b in 0..batch {
            let i = b * per_stream + pos + s;
            ids.push(data[i]);
            tg.push(data[i + 1]);
        }
    }
    (ids, tg)
}

fn sample(
    m: &Model,
    dev: &Device,
    vocab: &[char],
    prompt: u32,
    n: usize,
    temperature: f32,
    rng: &mut Rng,
) -> Result<String> {
    let mut out = String::new();
    let (mut h, mut c) = (None, None);
    let mut cur = prompt;
    for _ in 0..n {
        let ids = Tensor::from_slice_u32(dev, &[cur], &[1, 1])?;
        let x = embedding::embedding(&m.table, &ids)?;
        let o = m.rnn.forward(&x, h.as_ref(), c.as_ref())?;
        let logits = gemm::linear(
            &o.output.reshape(&[1, m.rnn.config().hidden_size])?,
            &m.w_out,
            Some(&m.b_out),
        )?;
        let scaled = recur::gpu::ops::elementwise::scale(&logits, 1.0 / temperature.max(1e-3))?;
        let p = softmax::softmax(&scaled)?.to_vec()?; // one readback per sampled character
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
        (h, c) = (Some(o.h_n), o.c_n);
    }
    Ok(out)
}

fn main() -> Result<()> {
    let args = Args::parse();
    let text = match &args.data {
        Some(p) => {
            std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?
        }
        None => BUNDLED.concat(),
    };
    let mut vocab: Vec<char> = text.chars().collect();
    vocab.sort_unstable();
    vocab.dedup();
    let index = |ch: char| vocab.binary_search(&ch).map(|i| i as u32).unwrap_or(0);
    let data: Vec<u32> = text.chars().map(index).collect();
    let split = data.len() * 9 / 10;
    let (train, val) = data.split_at(split);
    let per_stream = train.len() / args.batch;
    if per_stream <= args.bptt + 1 {
        bail!(
            "{} characters are too few for {} streams of {} steps",
            train.len(),
            args.batch,
            args.bptt
        );
    }
    let cell = match args.model.as_str() {
        "lstm" => Cell::Lstm,
        "gru" => Cell::Gru,
        "rnn" => Cell::RnnTanh,
        other => bail!("--model {other}: choose lstm, gru or rnn"),
    };

    let dev = Device::new()?;
    println!(
        "{}",
        dev.info().to_string().lines().next().unwrap_or_default()
    );
    println!(
        "corpus: {} characters ({} train, {} validation), vocabulary {}",
        data.len(),
        train.len(),
        val.len(),
        vocab.len()
    );
    let mut rng = Rng::new(args.seed);
    let v = vocab.len();
    let k = 1.0 / (args.hidden as f32).sqrt();
    let model = Model {
        table: Tensor::randn(&dev, &[v, args.embed], 0.0, 1.0, &mut rng)?,
        rnn: RecurrentConfig {
            num_layers: 2,
            ..RecurrentConfig::new(cell, args.embed, args.hidden)
        }
        .init(&dev, &mut rng)?,
        w_out: Tensor::rand(&dev, &[v, args.hidden], -k, k, &mut rng)?,
        b_out: Tensor::rand(&dev, &[v], -k, k, &mut rng)?,
    };
    let mut model = model;
    let mut opt = Adam::new(&dev, AdamConfig::adamw(args.lr), &model.params())?;
    let (mut first_step, mut state, mut pos, mut tokens): (u64, State, usize, usize) =
        (0, (None, None), 0, 0);
    if args.resume {
        let path = args
            .checkpoint
            .as_ref()
            .context("--resume needs --checkpoint PATH")?;
        let ck = Checkpoint::load(path)?;
        if ck.metadata.get("vocab").map(String::as_str)
            != Some(vocab.iter().collect::<String>().as_str())
        {
            bail!("{}: trained on another vocabulary", path.display());
        }
        model.load(&dev, &ck)?;
        let moments = opt
            .moments()
            .iter()
            .enumerate()
            .map(|(i, (m, _))| {
                Ok((
                    ck.tensor(&dev, &format!("optim.m.{i}"), m.shape())?,
                    ck.tensor(&dev, &format!("optim.v.{i}"), m.shape())?,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        opt.restore(moments, ck.meta("optim.steps")?)?;
        let state_shape = [
            model.rnn.named_parameters().len() / 4,
            args.batch,
            args.hidden,
        ];
        let load_state = |name: &str| -> Result<Option<Tensor>> {
            Ok(if ck.names().any(|n| n == name) {
                Some(ck.tensor(&dev, name, &state_shape)?)
            } else {
                None
            })
        };
        state = (load_state("state.h")?, load_state("state.c")?);
        first_step = ck.meta("step")?;
        pos = ck.meta("pos")?;
        tokens = ck.meta("tokens")?;
        rng = Rng::new(ck.meta("rng")?);
        println!("resumed from {} at step {first_step}", path.display());
    }
    let schedule = LrSchedule::Cosine {
        warmup: args.steps / 20,
        total: args.steps,
        min_factor: 0.1,
    };

    let bar = ProgressBar::new(args.steps);
    bar.set_style(ProgressStyle::with_template(
        "{bar:30} {pos}/{len} {msg} ETA {eta}",
    )?);
    bar.set_position(first_step);
    let start = Instant::now();
    let tokens_before = tokens;
    let last = args.stop_at.unwrap_or(args.steps).min(args.steps);
    for step in first_step..last {
        if pos + args.bptt + 1 >= per_stream {
            pos = 0;
            state = (None, None); // a new pass over the streams
        }
        let (ids, tg) = window_ids(train, args.batch, per_stream, pos, args.bptt);
        let ids = Tensor::from_slice_u32(&dev, &ids, &[args.bptt, args.batch])?;
        let tg = Tensor::from_slice_u32(&dev, &tg, &[args.bptt * args.batch])?;
        let (loss, next, grads) = train_window(&model, &dev, &ids, &tg, state, &mut rng)?;
        let grefs: Vec<&Tensor> = grads.iter().collect();
        let clip = clip_grad_norm(&grefs, args.clip)?;
        opt.set_lr(args.lr * schedule.factor(step));
        opt.step(&model.params(), &grefs, Some(&clip.scale))?;
        state = next;
        pos += args.bptt;
        tokens += args.bptt * args.batch;
        let loss = loss.item()?; // the step's only readback
        let rate = (tokens - tokens_before) as f64 / start.elapsed().as_secs_f64();
        bar.set_message(format!("loss {loss:.3} {rate:.0} tokens/s"));
        bar.inc(1);
        if let Some(path) = &args.checkpoint {
            if (step + 1) % args.checkpoint_every == 0 || step + 1 == last {
                let p = Progress {
                    step: step + 1,
                    pos,
                    tokens,
                    rng: &rng,
                    state: &state,
                };
                save_checkpoint(path, &model, &opt, &vocab, p)?;
            }
        }
        if (step + 1) % args.eval_every == 0 || step + 1 == args.steps {
            let vl = evaluate(
                &model,
                &dev,
                val,
                args.batch.min(val.len() / (args.bptt + 1)).max(1),
                args.bptt,
            )?;
            // Printed even when stderr (the bar) is not a terminal.
            bar.suspend(|| {
                println!(
                    "step {:>5}  train {loss:.3}  validation {vl:.3} nats/char ({:.3} bits/char)",
                    step + 1,
                    vl / std::f32::consts::LN_2
                )
            });
        }
    }
    bar.finish();
    if last < args.steps {
        println!("stopped at step {last} of {}", args.steps);
        return Ok(());
    }
    println!(
        "{} steps in {:.1} s ({:.0} tokens/s)",
        last - first_step,
        start.elapsed().as_secs_f64(),
        (tokens - tokens_before) as f64 / start.elapsed().as_secs_f64()
    );
    let text = sample(
        &model,
        &dev,
        &vocab,
        data[0],
        args.sample,
        args.temperature,
        &mut rng,
    )?;
    println!("--- sample (temperature {}) ---\n{text}", args.temperature);
    Ok(())
}
