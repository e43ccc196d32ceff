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
use recur::nn::tbptt::{Chunk, Tbptt};
use recur::nn::text::CharCorpus;
use recur::nn::{
    clip_grad_norm_params, Adam, AdamConfig, Family, LrSchedule, Module, Optimizer, Rng,
    SequenceLmConfig, State, Tensor, Var,
};

#[path = "support/char_checkpoint.rs"]
mod ckpt;
#[path = "support/char_model.rs"]
mod model;
#[path = "support/plot.rs"]
mod plot;

use ckpt::{History, Progress};
use model::{evaluate, loss_sum, sample, window_ids};

/// recur's own sources: text the project owns.
const BUNDLED: &[&str] = &[
    include_str!("../crates/recur-gpu/src/record.rs"),
    include_str!("../crates/recur-gpu/src/kernel.rs"),
    include_str!("../crates/recur-gpu/src/device.rs"),
    include_str!("../crates/recur-gpu/src/tensor.rs"),
    include_str!("../crates/recur-gpu/src/ops/rnn/mod.rs"),
    include_str!("../crates/recur-gpu/src/ops/rnn/backward.rs"),
    include_str!("../crates/recur-nn/src/recurrent/mod.rs"),
    include_str!("../crates/recur-nn/src/recurrent/run.rs"),
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
    /// Recurrent cell: lstm, gru or rnn (PyTorch layers), mingru or minlstm
    /// (blocks of width --hidden, trained with the parallel scan), or mamba
    /// (residual Mamba blocks of width --hidden, d_state 16, d_conv 4,
    /// expand 2, trained with the selective scan), or mamba2, linear, retnet
    /// or gla (residual Mamba-2 / linear attention / RetNet retention / GLA
    /// blocks of width --hidden, heads of 64, on the chunked engine).
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

fn main() -> Result<()> {
    let args = Args::parse();
    let text = match &args.data {
        Some(p) => {
            std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?
        }
        None => BUNDLED.concat(),
    };
    // Every tenth block of 2,048 characters is held out: validation comes
    // from the same mix of text as training.
    let corpus = CharCorpus::split(&text, 2048, 10)?;
    let (train, val, vocab) = (&corpus.train[..], &corpus.val[..], &corpus.vocab);
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
    let family = Family::parse(&args.model)?;
    let dev = Device::new()?;
    println!(
        "{}",
        dev.info().to_string().lines().next().unwrap_or_default()
    );
    println!(
        "corpus: {} characters ({} train, {} validation: every tenth block of 2,048), vocabulary {}",
        train.len() + val.len(),
        train.len(),
        val.len(),
        vocab.len()
    );
    let mut rng = Rng::new(args.seed);
    let v = vocab.len();
    let model = SequenceLmConfig {
        family,
        vocab: v,
        hidden: args.hidden,
        layers: args.layers,
        embed: args.embed,
        dropout: args.dropout,
    }
    .init(&dev, &mut rng)?;
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
    let (mut first_step, mut state, mut tokens) = (0u64, None::<State>, 0usize);
    let mut history = History::default();
    if args.resume {
        let path = args
            .checkpoint
            .as_ref()
            .context("--resume needs --checkpoint PATH")?;
        let r = ckpt::resume(path, &dev, &model, &mut opt, vocab, args.batch)?;
        (first_step, state, tokens, rng, history) = (r.step, r.state, r.tokens, r.rng, r.history);
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
            state = None; // a new pass over the streams
        }
        let forward = |r: Range<usize>,
                       s: &Option<State>,
                       loss: Range<usize>|
         -> recur::nn::Result<Chunk<Option<State>>> {
            let (ids, tg) = window_ids(train, args.batch, per_stream, r.clone());
            let ids = Tensor::from_slice_u32(&dev, &ids, &[args.batch, r.len()])?;
            let (out, next) = model.features(&ids, s.as_ref())?;
            let loss_sum = if loss.is_empty() {
                None
            } else {
                let rows = loss.start - r.start..loss.end - r.start;
                Some(loss_sum(&model, &out, rows, &tg).map_err(|e| {
                    recur::nn::Error::InvalidArgument {
                        op: "char_lm",
                        what: format!("{e:#}"),
                    }
                })?)
            };
            Ok(Chunk {
                loss_sum,
                count: loss.len() * args.batch,
                state: Some(next),
            })
        };
        let update = |loss: &Var| -> recur::nn::Result<()> {
            model.zero_grad();
            loss.backward()?;
            let clip = clip_grad_norm_params(&params, args.clip)?;
            opt.set_lr(args.lr * schedule.factor(step))?;
            opt.step_params(&params, Some(&clip.scale))
        };
        let (next, loss) = tbptt.run_update(u, &state, forward, update)?;
        state = next;
        tokens += u.loss.len() * args.batch;
        let loss = loss.item()?; // the update's only readback
        if !loss.is_finite() {
            bar.abandon();
            bail!(
                "the training loss became {loss} at step {} (of {}): stopped; \
                 try a lower --lr or --clip",
                step + 1,
                args.steps
            );
        }
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
                    state: state.as_ref(),
                    history: &history,
                };
                ckpt::save_checkpoint(path, &model, &opt, vocab, p)?;
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
        vocab,
        train[0],
        args.sample,
        args.temperature,
        &mut rng,
    )?;
    println!("--- sample (temperature {}) ---\n{text}", args.temperature);
    Ok(())
}
