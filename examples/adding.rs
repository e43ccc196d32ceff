//! The adding problem (Hochreiter & Schmidhuber 1997): a sequence of T pairs
//! (value in [0, 1), marker); exactly two markers are set, one in each half,
//! and the target is the sum of the two marked values. Predicting 1 always
//! gives MSE ≈ 0.167; solving it needs memory across the whole sequence.
//!
//! ```text
//! cargo run --release --example adding -- --model lstm --t 100
//! cargo run --release --example adding -- --model rnn --t 100
//! ```

use anyhow::{bail, Result};
use clap::Parser;
use recur::gpu::ops::{elementwise, gemm, reduce};
use recur::gpu::Device;
use recur::nn::{clip_grad_norm, Adam, AdamConfig, Cell, Recurrent, RecurrentConfig, Rng, Tensor};

#[derive(Parser)]
#[command(about = "The adding problem with recur's recurrent layers")]
struct Args {
    /// Recurrent cell: lstm, gru or rnn.
    #[arg(long, default_value = "lstm")]
    model: String,
    /// Sequence length.
    #[arg(long, default_value_t = 100)]
    t: usize,
    /// Hidden size.
    #[arg(long, default_value_t = 64)]
    hidden: usize,
    /// Batch size.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Optimizer steps.
    #[arg(long, default_value_t = 1500)]
    steps: u64,
    /// Learning rate (Adam).
    #[arg(long, default_value_t = 1e-2)]
    lr: f32,
    /// Test-set evaluation every this many steps.
    #[arg(long, default_value_t = 250)]
    eval_every: u64,
    /// Seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// LSTM forget-gate bias at initialisation (Jozefowicz et al. 2015 use 1).
    #[arg(long, default_value_t = 1.0)]
    forget_bias: f32,
}

/// A batch, time-major (T, B, 2), and its targets (B, 1).
fn batch(t: usize, b: usize, rng: &mut Rng) -> (Vec<f32>, Vec<f32>) {
    let mut x = vec![0.0; t * b * 2];
    let mut y = vec![0.0; b];
    for k in 0..b {
        let half = (t / 2).max(1);
        let i = rng.below(half as u32) as usize;
        let j = (half + rng.below((t - half).max(1) as u32) as usize).min(t - 1);
        for s in 0..t {
            x[(s * b + k) * 2] = rng.next_f32();
        }
        for m in [i, j] {
            x[(m * b + k) * 2 + 1] = 1.0;
            y[k] += x[(m * b + k) * 2];
        }
    }
    (x, y)
}

struct Model {
    rnn: Recurrent,
    w: Tensor,
    b: Tensor,
}

fn params(m: &Model) -> Vec<&Tensor> {
    let mut p: Vec<&Tensor> = m
        .rnn
        .named_parameters()
        .into_iter()
        .map(|(_, t)| t)
        .collect();
    p.extend([&m.w, &m.b]);
    p
}

/// Mean squared error of the prediction from h_n, and the model output.
fn predict(m: &Model, x: &Tensor) -> Result<(Tensor, recur::nn::RecurrentOutput)> {
    let out = m.rnn.forward(x, None, None)?;
    let h = m.rnn.config().hidden_size;
    let b = x.shape()[1];
    let pred = gemm::linear(&out.h_n.reshape(&[b, h])?, &m.w, Some(&m.b))?;
    Ok((pred, out))
}

fn mse(pred: &Tensor, y: &Tensor) -> Result<(Tensor, Tensor)> {
    let diff = elementwise::sub(pred, y)?;
    let loss = reduce::mean(
        &elementwise::activation(&diff, recur::gpu::ops::Activation::Square)?
            .reshape(&[pred.numel()])?,
        0,
    )?;
    Ok((loss, diff))
}

fn main() -> Result<()> {
    let args = Args::parse();
    let cell = match args.model.as_str() {
        "lstm" => Cell::Lstm,
        "gru" => Cell::Gru,
        "rnn" => Cell::RnnTanh,
        other => bail!("--model {other}: choose lstm, gru or rnn"),
    };
    if args.t < 2 {
        bail!("--t must be at least 2");
    }
    let dev = Device::new()?;
    let mut rng = Rng::new(args.seed);
    let h = args.hidden;
    let mut model = Model {
        rnn: RecurrentConfig::new(cell, 2, h).init(&dev, &mut rng)?,
        w: Tensor::rand(&dev, &[1, h], -0.1, 0.1, &mut rng)?,
        b: Tensor::full(&dev, &[1], 1.0)?,
    };
    model.rnn.init_orthogonal_hh(&mut rng)?;
    if cell == Cell::Lstm {
        // Rows H..2H of bias_ih_l0 are the forget gate (PyTorch order i, f, g, o).
        let mut bias = vec![0.0f32; 4 * h];
        bias[h..2 * h].fill(args.forget_bias);
        model
            .rnn
            .set_parameter("bias_ih_l0", Tensor::from_slice(&dev, &bias, &[4 * h])?)?;
        model
            .rnn
            .set_parameter("bias_hh_l0", Tensor::zeros(&dev, &[4 * h])?)?;
    }
    let mut opt = Adam::new(&dev, AdamConfig::adam(args.lr), &params(&model))?;
    let mut test_rng = Rng::new(args.seed ^ 0xadd);
    let (tx, ty) = batch(args.t, 512, &mut test_rng);
    let test_x = Tensor::from_slice(&dev, &tx, &[args.t, 512, 2])?;
    let test_y = Tensor::from_slice(&dev, &ty, &[512, 1])?;
    let start = std::time::Instant::now();
    let mut test_mse = f32::NAN;
    for step in 0..args.steps {
        let (x, y) = batch(args.t, args.batch, &mut rng);
        let x = Tensor::from_slice(&dev, &x, &[args.t, args.batch, 2])?;
        let y = Tensor::from_slice(&dev, &y, &[args.batch, 1])?;
        let (out, tape) = model.rnn.forward_train(&x, None, None, &mut rng)?;
        let hn = out.h_n.reshape(&[args.batch, h])?;
        let pred = gemm::linear(&hn, &model.w, Some(&model.b))?;
        let (_, diff) = mse(&pred, &y)?;
        let dpred = elementwise::scale(&diff, 2.0 / args.batch as f32)?; // d MSE / d pred
        let dw = gemm::Gemm {
            trans_a: true,
            ..Default::default()
        }
        .run(&dpred, &hn, None)?;
        let db = reduce::sum(&dpred, 0)?;
        let dh = gemm::matmul(&dpred, &model.w)?.reshape(&[1, args.batch, h])?;
        let g = model.rnn.backward(
            &tape,
            &Tensor::zeros(&dev, out.output.shape())?,
            Some(&dh),
            None,
        )?;
        let mut grads: Vec<Tensor> = g.params.into_iter().map(|(_, t)| t).collect();
        grads.extend([dw, db]);
        let grefs: Vec<&Tensor> = grads.iter().collect();
        let clip = clip_grad_norm(&grefs, 1.0)?;
        opt.step(&params(&model), &grefs, Some(&clip.scale))?;
        if (step + 1) % args.eval_every == 0 || step + 1 == args.steps {
            let (pred, _) = predict(&model, &test_x)?;
            test_mse = mse(&pred, &test_y)?.0.item()?;
            println!(
                "step {:>6}  test MSE {test_mse:.4}  ({:.0} s)",
                step + 1,
                start.elapsed().as_secs_f64()
            );
        }
    }
    println!(
        "{} T={} H={}: final test MSE {test_mse:.4} (predicting 1 scores ~0.167)",
        args.model, args.t, h
    );
    Ok(())
}
