//! The copy task (Hochreiter & Schmidhuber 1997; Arjovsky et al. 2016):
//! read `--length` symbols, wait `--delay` blank steps, and after the
//! delimiter write the symbols back. A model without memory cannot beat
//! `length · ln(symbols) / steps` nats per step.
//!
//! ```text
//! cargo run --release --example copy -- --model lstm --delay 20
//! ```

use anyhow::{bail, Result};
use clap::Parser;
use recur::gpu::Device;
use recur::nn::tasks::CopyTask;
use recur::nn::{
    clip_grad_norm_params, functional as F, no_grad, prefixed, Adam, AdamConfig, Cell, Embedding,
    Layer, Linear, LinearConfig, LossReduction, Module, Optimizer, Recurrent, RecurrentConfig, Rng,
    Tensor, Var,
};

#[derive(Parser)]
#[command(about = "The copy task with recur's recurrent layers")]
struct Args {
    /// Recurrent cell: lstm, gru or rnn.
    #[arg(long, default_value = "lstm")]
    model: String,
    /// Blank steps between the symbols and the delimiter (the memory span).
    #[arg(long, default_value_t = 20)]
    delay: usize,
    /// Symbols to copy.
    #[arg(long, default_value_t = 10)]
    length: usize,
    /// Alphabet size.
    #[arg(long, default_value_t = 8)]
    symbols: usize,
    /// Hidden size.
    #[arg(long, default_value_t = 128)]
    hidden: usize,
    /// Batch size.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Optimizer steps.
    #[arg(long, default_value_t = 1000)]
    steps: u64,
    /// Learning rate (Adam).
    #[arg(long, default_value_t = 3e-3)]
    lr: f32,
    /// Test-set evaluation every this many steps.
    #[arg(long, default_value_t = 100)]
    eval_every: u64,
    /// Seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// embedding → recurrent layer → per-step linear read-out.
struct Model {
    embedding: Embedding,
    rnn: Recurrent,
    out: Linear,
}

impl Module for Model {
    fn named_parameters(&self) -> Vec<(String, Var)> {
        let mut p = prefixed("embedding", &self.embedding);
        p.extend(prefixed("rnn", &self.rnn));
        p.extend(prefixed("out", &self.out));
        p
    }
}

impl Model {
    /// Logits (S·B, V) for time-major ids (S, B).
    fn logits(&self, ids: &Tensor) -> Result<Var> {
        let out = self
            .rnn
            .forward_var(&self.embedding.forward(ids)?, None, None)?
            .output;
        let (s, b, h) = (out.shape()[0], out.shape()[1], out.shape()[2]);
        Ok(self.out.forward(&F::reshape(&out, &[s * b, h])?)?)
    }
}

/// Mean cross-entropy per step and the fraction of recalled symbols right.
fn evaluate(m: &Model, dev: &Device, task: &CopyTask, x: &[u32], y: &[u32]) -> Result<(f32, f32)> {
    let _g = no_grad();
    let (s, b) = (task.seq_len(), x.len() / task.seq_len());
    let logits = m.logits(&Tensor::from_slice_u32(dev, x, &[s, b])?)?;
    let tg = Tensor::from_slice_u32(dev, y, &[s * b])?;
    let loss = F::cross_entropy(&logits, &tg, None, LossReduction::Mean)?.item()?;
    let v = task.vocab();
    let host = logits.to_vec()?;
    let rows = task.recall().flat_map(|t| (0..b).map(move |k| t * b + k));
    let (mut right, mut total) = (0, 0);
    for r in rows {
        let row = &host[r * v..(r + 1) * v];
        let arg = (0..v).fold(0, |best, i| if row[i] > row[best] { i } else { best });
        right += (arg as u32 == y[r]) as usize;
        total += 1;
    }
    Ok((loss, right as f32 / total as f32))
}

fn main() -> Result<()> {
    let args = Args::parse();
    let cell = match args.model.as_str() {
        "lstm" => Cell::Lstm,
        "gru" => Cell::Gru,
        "rnn" => Cell::RnnTanh,
        other => bail!("--model {other}: choose lstm, gru or rnn"),
    };
    if args.length == 0 || args.symbols < 2 {
        bail!("--length must be positive and --symbols at least 2");
    }
    let task = CopyTask {
        symbols: args.symbols,
        length: args.length,
        delay: args.delay,
    };
    let dev = Device::new()?;
    let mut rng = Rng::new(args.seed);
    let v = task.vocab();
    let model = Model {
        embedding: Embedding::new(&dev, v, 16, &mut rng)?,
        rnn: RecurrentConfig::new(cell, 16, args.hidden).init(&dev, &mut rng)?,
        out: LinearConfig::new(args.hidden, v).init(&dev, &mut rng)?,
    };
    let params = model.parameters();
    let mut opt = Adam::for_params(AdamConfig::adam(args.lr), &params)?;
    let (tx, ty) = task.batch(256, &mut Rng::new(args.seed ^ 0xc0b1));
    let s = task.seq_len();
    println!(
        "copy task: {} symbols of {}, delay {}, {} steps per sequence; memoryless baseline {:.4} nats/step",
        task.length,
        task.symbols,
        task.delay,
        s,
        task.baseline()
    );
    let start = std::time::Instant::now();
    let mut last = (f32::NAN, 0.0);
    for step in 0..args.steps {
        let (x, y) = task.batch(args.batch, &mut rng);
        let x = Tensor::from_slice_u32(&dev, &x, &[s, args.batch])?;
        let y = Tensor::from_slice_u32(&dev, &y, &[s * args.batch])?;
        let loss = F::cross_entropy(&model.logits(&x)?, &y, None, LossReduction::Mean)?;
        model.zero_grad();
        loss.backward()?;
        let clip = clip_grad_norm_params(&params, 1.0)?;
        opt.step_params(&params, Some(&clip.scale))?;
        if (step + 1) % args.eval_every == 0 || step + 1 == args.steps {
            last = evaluate(&model, &dev, &task, &tx, &ty)?;
            println!(
                "step {:>6}  test {:.4} nats/step  recall accuracy {:.3}  ({:.0} s)",
                step + 1,
                last.0,
                last.1,
                start.elapsed().as_secs_f64()
            );
        }
    }
    println!(
        "{} delay={} H={}: final test loss {:.4} (baseline {:.4}), recall accuracy {:.3} (chance {:.3})",
        args.model,
        args.delay,
        args.hidden,
        last.0,
        task.baseline(),
        last.1,
        1.0 / task.symbols as f32
    );
    Ok(())
}
