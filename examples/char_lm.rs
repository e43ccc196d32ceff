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
//! The model is a [`Module`]; its forward records on the autograd tape, and
//! each update of the truncated-BPTT plan (`--k1`, `--k2`) runs backward,
//! clipping and AdamW in one GPU submission, read back once for the log.
//! The loss curve is written as PNG and SVG (`--plot`).

use std::ops::Range;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use recur::gpu::Device;
use recur::nn::checkpoint::{self, Checkpoint};
use recur::nn::tbptt::{Chunk, Tbptt};
use recur::nn::{
    clip_grad_norm_params, functional as F, no_grad, prefixed, Adam, AdamConfig, Cell, Embedding,
    Layer, Linear, LinearConfig, LossReduction, LrSchedule, MinCell, MinRnnBlock, Module,
    Optimizer, Recurrent, RecurrentConfig, RmsNorm, Rng, Tensor, Var,
};

#[path = "support/plot.rs"]
mod plot;

/// recur's own sources: text the project owns.
const BUNDLED: &[&str] = &[
    include_str!("../crates/recur-gpu/src/record.rs"),
    include_str!("../crates/recur-gpu/src/kernel.rs"),
    include_str!("../crates/recur-gpu/src/device.rs"),
    include_str!("../crates/recur-gpu/src/tensor.rs"),
    include_str!("../crates/recur-gpu/src/ops/rnn/mod.rs"),
    include_str!("../crates/recur-gpu/src/ops/rnn/backward.rs"),
    include_str!("../crates/recur-nn/src/recurrent.rs"),
    include_str!("../crates/recur-nn/src/autograd.rs"),
    include_str!("../shaders/rnn.wgsl"),
    include_str!("../shaders/gemm.wgsl"),
    include_str!("../README.md"),
];

#[derive(Parser)]
#[command(about = "Train a character-level language model with recur")]
struct Args {
    /// UTF-8 text to train on (default: recur's own sources).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Recurrent cell: lstm, gru or rnn (PyTorch layers), or mingru or
    /// minlstm (blocks of width --hidden, trained with the parallel scan).
    #[arg(long, default_value = "lstm")]
    model: String,
    /// Optimizer steps (truncated-BPTT updates).
    #[arg(long, default_value_t = 300)]
    steps: u64,
    /// Hidden size of each recurrent layer.
    #[arg(long, default_value_t = 256)]
    hidden: usize,
    /// Recurrent layers.
    #[arg(long, default_value_t = 2)]
    layers: usize,
    /// Embedding width.
    #[arg(long, default_value_t = 64)]
    embed: usize,
    /// Parallel streams (batch).
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// TBPTT k1: new characters per stream per update.
    #[arg(long, default_value_t = 64)]
    k1: usize,
    /// TBPTT k2: steps each update backpropagates through (default k1).
    #[arg(long)]
    k2: Option<usize>,
    /// Dropout between the recurrent layers.
    #[arg(long, default_value_t = 0.0)]
    dropout: f32,
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
    /// Loss curve: writes STEM.png and STEM.svg at every validation.
    #[arg(long, default_value = "char_lm_loss")]
    plot: PathBuf,
    /// Write a checkpoint (safetensors, atomic) here every `--checkpoint-every` steps.
    #[arg(long)]
    checkpoint: Option<PathBuf>,
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

/// The recurrent part: PyTorch-style LSTM/GRU/RNN layers, or a stack of
/// minGRU/minLSTM blocks (pre-RMSNorm cell and MLP with residuals, Feng et
/// al. 2024) with a final RMSNorm.
enum Backbone {
    Classic(Recurrent),
    Min(Vec<MinRnnBlock>, RmsNorm),
}

/// embedding → recurrent layers → linear, named as the PyTorch module with
/// submodules `embedding`, `rnn` (and `norm`) and `out` would be.
struct Model {
    embedding: Embedding,
    rnn: Backbone,
    out: Linear,
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
    /// (classic: [h] or [h, c]; min: one state per block; empty for zeros),
    /// and the state after the last step.
    fn run(&self, ids: &Tensor, state: &[Var]) -> Result<(Var, Vec<Var>)> {
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
        }
    }

    /// Shapes of the carried state's tensors, for checkpoints.
    fn state_shapes(&self, batch: usize, hidden: usize) -> Vec<Vec<usize>> {
        match &self.rnn {
            Backbone::Classic(r) => {
                let c = r.config();
                let n = if c.cell == Cell::Lstm { 2 } else { 1 };
                vec![vec![c.num_layers * c.directions(), batch, hidden]; n]
            }
            Backbone::Min(blocks, _) => vec![vec![batch, hidden]; blocks.len()],
        }
    }

    /// Summed cross-entropy of the outputs at steps `rows` of `out` (T, B, H)
    /// against next-character targets (T·B, time-major).
    fn loss_sum(&self, out: &Var, rows: Range<usize>, targets: &[u32]) -> Result<Var> {
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
fn window_ids(
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
fn evaluate(m: &Model, dev: &Device, data: &[u32], batch: usize, window: usize) -> Result<f32> {
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

fn sample(
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

/// Loss history, kept in checkpoints as "step,value" pairs.
#[derive(Default)]
struct History {
    train: Vec<(f64, f64)>,
    val: Vec<(f64, f64)>,
}

impl History {
    fn encode(points: &[(f64, f64)]) -> String {
        points
            .iter()
            .map(|(x, y)| format!("{x},{y}"))
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn decode(s: &str) -> Vec<(f64, f64)> {
        s.split_whitespace()
            .filter_map(|p| {
                let (x, y) = p.split_once(',')?;
                Some((x.parse().ok()?, y.parse().ok()?))
            })
            .collect()
    }

    fn plot(&self, stem: &std::path::Path, title: &str) {
        // Smooth the per-step training loss over 20 steps for legibility.
        let smooth: Vec<(f64, f64)> = self
            .train
            .iter()
            .enumerate()
            .map(|(i, &(x, _))| {
                let w = &self.train[i.saturating_sub(19)..=i];
                (x, w.iter().map(|p| p.1).sum::<f64>() / w.len() as f64)
            })
            .collect();
        let series = [
            plot::Series {
                name: "train (20-step mean)",
                points: &smooth,
                color: plotters::style::RGBColor(31, 119, 180),
            },
            plot::Series {
                name: "validation",
                points: &self.val,
                color: plotters::style::RGBColor(214, 39, 40),
            },
        ];
        if let Err(e) = plot::loss_curves(stem, title, "nats / char", &series) {
            eprintln!("loss curve not written: {e:#}");
        }
    }
}

/// Everything needed to continue exactly where a run stopped.
struct Progress<'a> {
    step: u64,
    tokens: usize,
    rng: &'a Rng,
    state: &'a [Var],
    history: &'a History,
}

fn save_checkpoint(
    path: &std::path::Path,
    m: &Model,
    opt: &Adam,
    vocab: &[char],
    p: Progress,
) -> Result<()> {
    let params = m.named_parameters();
    let mut tensors: Vec<(String, &Tensor)> =
        params.iter().map(|(n, v)| (n.clone(), v.value())).collect();
    for (i, (mm, vv)) in opt.moments().iter().enumerate() {
        tensors.push((format!("optim.m.{i}"), mm));
        tensors.push((format!("optim.v.{i}"), vv));
    }
    for (i, s) in p.state.iter().enumerate() {
        tensors.push((format!("state.{i}"), s.value()));
    }
    let meta = std::collections::HashMap::from([
        ("step".to_string(), p.step.to_string()),
        ("tokens".to_string(), p.tokens.to_string()),
        ("rng".to_string(), p.rng.state().to_string()),
        (
            "dropout_rng".to_string(),
            match &m.rnn {
                Backbone::Classic(r) => r.dropout_rng_state(),
                Backbone::Min(..) => 0,
            }
            .to_string(),
        ),
        ("optim.steps".to_string(), opt.steps().to_string()),
        ("vocab".to_string(), vocab.iter().collect::<String>()),
        (
            "history.train".to_string(),
            History::encode(&p.history.train),
        ),
        ("history.val".to_string(), History::encode(&p.history.val)),
    ]);
    checkpoint::save(path, &tensors, &meta)?;
    Ok(())
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
    let tbptt = Tbptt::new(args.k1, args.k2.unwrap_or(args.k1))?;
    let per_stream = train.len() / args.batch.max(1);
    if per_stream <= tbptt.k1.max(tbptt.k2) + 1 {
        bail!(
            "{} characters are too few for {} streams of {} steps",
            train.len(),
            args.batch,
            tbptt.k1.max(tbptt.k2)
        );
    }
    let plan = tbptt.plan(per_stream - 1);
    let cell = match args.model.as_str() {
        "lstm" => Some(Cell::Lstm),
        "gru" => Some(Cell::Gru),
        "rnn" => Some(Cell::RnnTanh),
        "mingru" | "minlstm" => None,
        other => bail!("--model {other}: choose lstm, gru, rnn, mingru or minlstm"),
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
    let model = match cell {
        Some(cell) => Model {
            embedding: Embedding::new(&dev, v, args.embed, &mut rng)?,
            rnn: Backbone::Classic(
                RecurrentConfig {
                    num_layers: args.layers,
                    dropout: args.dropout,
                    ..RecurrentConfig::new(cell, args.embed, args.hidden)
                }
                .init(&dev, &mut rng)?,
            ),
            out: LinearConfig::new(args.hidden, v).init(&dev, &mut rng)?,
        },
        None => {
            // The blocks are residual: the embedding has the model's width.
            let kind = if args.model == "mingru" {
                MinCell::Gru
            } else {
                MinCell::Lstm
            };
            let blocks = (0..args.layers)
                .map(|_| MinRnnBlock::new(&dev, kind, args.hidden, false, &mut rng))
                .collect::<recur::nn::Result<Vec<_>>>()?;
            Model {
                embedding: Embedding::new(&dev, v, args.hidden, &mut rng)?,
                rnn: Backbone::Min(blocks, RmsNorm::new(&dev, args.hidden, 1e-6)?),
                out: LinearConfig::new(args.hidden, v).init(&dev, &mut rng)?,
            }
        }
    };
    println!(
        "model: {} {}x{} ({} parameters), TBPTT(k1={}, k2={}), {} updates per pass",
        args.model,
        args.layers,
        args.hidden,
        model.num_parameters(),
        tbptt.k1,
        tbptt.k2,
        plan.len()
    );
    let params = model.parameters();
    let mut opt = Adam::for_params(AdamConfig::adamw(args.lr), &params)?;
    let (mut first_step, mut state, mut tokens) = (0u64, Vec::<Var>::new(), 0usize);
    let mut history = History::default();
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
        model.load_parameters(&dev, &ck, "")?;
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
        for (i, shape) in model
            .state_shapes(args.batch, args.hidden)
            .iter()
            .enumerate()
        {
            let name = format!("state.{i}");
            if ck.names().any(|n| n == name) {
                state.push(Var::new(ck.tensor(&dev, &name, shape)?));
            }
        }
        first_step = ck.meta("step")?;
        tokens = ck.meta("tokens")?;
        rng = Rng::new(ck.meta("rng")?);
        if let Backbone::Classic(r) = &model.rnn {
            r.set_dropout_rng_state(ck.meta("dropout_rng")?);
        }
        let get = |k: &str| {
            ck.metadata
                .get(k)
                .map(|s| History::decode(s))
                .unwrap_or_default()
        };
        history = History {
            train: get("history.train"),
            val: get("history.val"),
        };
        println!("resumed from {} at step {first_step}", path.display());
    }
    let schedule = LrSchedule::Cosine {
        warmup: args.steps / 20,
        total: args.steps,
        min_factor: 0.1,
    };
    let title = format!(
        "{} {}x{} on {}",
        args.model,
        args.layers,
        args.hidden,
        args.data
            .as_ref()
            .and_then(|p| p.file_name())
            .map_or("recur's sources".into(), |n| n
                .to_string_lossy()
                .into_owned())
    );

    let bar = ProgressBar::new(args.steps);
    bar.set_style(ProgressStyle::with_template(
        "{bar:30} {pos}/{len} {msg} ETA {eta}",
    )?);
    bar.set_position(first_step);
    let start = Instant::now();
    let tokens_before = tokens;
    let last = args.stop_at.unwrap_or(args.steps).min(args.steps);
    for step in first_step..last {
        let u = &plan[(step % plan.len() as u64) as usize];
        if step % plan.len() as u64 == 0 {
            state.clear(); // a new pass over the streams
        }
        let forward =
            |r: Range<usize>, s: &[Var], loss: Range<usize>| -> recur::nn::Result<Chunk> {
                let (ids, tg) = window_ids(train, args.batch, per_stream, r.clone());
                let ids = Tensor::from_slice_u32(&dev, &ids, &[r.len(), args.batch])?;
                let (out, next) =
                    model
                        .run(&ids, s)
                        .map_err(|e| recur::nn::Error::InvalidArgument {
                            op: "char_lm",
                            what: format!("{e:#}"),
                        })?;
                let loss_sum = if loss.is_empty() {
                    None
                } else {
                    let rows = loss.start - r.start..loss.end - r.start;
                    Some(model.loss_sum(&out, rows, &tg).map_err(|e| {
                        recur::nn::Error::InvalidArgument {
                            op: "char_lm",
                            what: format!("{e:#}"),
                        }
                    })?)
                };
                Ok(Chunk {
                    loss_sum,
                    count: loss.len() * args.batch,
                    state: next,
                })
            };
        let update = |loss: &Var| -> recur::nn::Result<()> {
            model.zero_grad();
            loss.backward()?;
            let clip = clip_grad_norm_params(&params, args.clip)?;
            opt.set_lr(args.lr * schedule.factor(step));
            opt.step_params(&params, Some(&clip.scale))
        };
        let (next, loss) = tbptt.run_update(u, &state, forward, update)?;
        state = next;
        tokens += u.loss.len() * args.batch;
        let loss = loss.item()?; // the update's only readback
        history.train.push(((step + 1) as f64, loss as f64));
        let rate = (tokens - tokens_before) as f64 / start.elapsed().as_secs_f64();
        bar.set_message(format!("loss {loss:.3} {rate:.0} tokens/s"));
        bar.inc(1);
        if (step + 1) % args.eval_every == 0 || step + 1 == args.steps {
            let vl = evaluate(
                &model,
                &dev,
                val,
                args.batch.min(val.len() / (tbptt.k1 + 1)).max(1),
                tbptt.k1,
            )?;
            history.val.push(((step + 1) as f64, vl as f64));
            history.plot(&args.plot, &title);
            // Printed even when stderr (the bar) is not a terminal.
            bar.suspend(|| {
                println!(
                    "step {:>5}  train {loss:.3}  validation {vl:.3} nats/char ({:.3} bits/char)  {:.0} s",
                    step + 1,
                    vl / std::f32::consts::LN_2,
                    start.elapsed().as_secs_f64()
                )
            });
        }
        if let Some(path) = &args.checkpoint {
            if (step + 1) % args.checkpoint_every == 0 || step + 1 == last {
                let p = Progress {
                    step: step + 1,
                    tokens,
                    rng: &rng,
                    state: &state,
                    history: &history,
                };
                save_checkpoint(path, &model, &opt, &vocab, p)?;
            }
        }
    }
    bar.finish();
    history.plot(&args.plot, &title);
    if last < args.steps {
        println!("stopped at step {last} of {}", args.steps);
        return Ok(());
    }
    println!(
        "{} steps in {:.1} s ({:.0} tokens/s); loss curve: {}.png / .svg",
        last - first_step,
        start.elapsed().as_secs_f64(),
        (tokens - tokens_before) as f64 / start.elapsed().as_secs_f64(),
        args.plot.display()
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
