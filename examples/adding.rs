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
use recur::gpu::Device;
use recur::nn::tasks::adding_problem;
use recur::nn::{
    clip_grad_norm_params, functional as F, no_grad, prefixed, Adam, AdamConfig, Cell, Layer,
    Linear, LinearConfig, LossReduction, Module, Optimizer, Recurrent, RecurrentConfig, Rng,
    Tensor, Var,
};

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

/// A recurrent layer read out from its final state by a linear layer.
struct Model {
    rnn: Recurrent,
    out: Linear,
}

impl Module for Model {
    fn named_parameters(&self) -> Vec<(String, Var)> {
        let mut p = prefixed("rnn", &self.rnn);
        p.extend(prefixed("out", &self.out));
        p
    }
}

impl Model {
    /// Predictions (B, 1) for inputs (T, B, 2).
    fn predict(&self, x: &Var) -> Result<Var> {
        let h_n = self.rnn.forward_var(x, None, None)?.h_n;
        let (b, h) = (x.shape()[1], self.rnn.config().hidden_size);
        Ok(self.out.forward(&F::reshape(&h_n, &[b, h])?)?)
    }
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
    let model = Model {
        rnn: RecurrentConfig::new(cell, 2, h).init(&dev, &mut rng)?,
        out: LinearConfig::new(h, 1).init(&dev, &mut rng)?,
    };
    model.rnn.init_orthogonal_hh(&mut rng)?;
    model
        .out
        .bias
        .as_ref()
        .map(|b| b.assign(&Tensor::full(&dev, &[1], 1.0)?))
        .transpose()?;
    if cell == Cell::Lstm {
        // Rows H..2H of bias_ih_l0 are the forget gate (PyTorch order i, f, g, o).
        let mut bias = vec![0.0f32; 4 * h];
        bias[h..2 * h].fill(args.forget_bias);
        model
            .rnn
            .set_parameter("bias_ih_l0", &Tensor::from_slice(&dev, &bias, &[4 * h])?)?;
        model
            .rnn
            .set_parameter("bias_hh_l0", &Tensor::zeros(&dev, &[4 * h])?)?;
    }
    let params = model.parameters();
    let mut opt = Adam::for_params(AdamConfig::adam(args.lr), &params)?;
    let mut test_rng = Rng::new(args.seed ^ 0xadd);
    let (tx, ty) = adding_problem(args.t, 512, &mut test_rng);
    let test_x = Var::new(Tensor::from_slice(&dev, &tx, &[args.t, 512, 2])?);
    let test_y = Var::new(Tensor::from_slice(&dev, &ty, &[512, 1])?);
    let start = std::time::Instant::now();
    let mut test_mse = f32::NAN;
    for step in 0..args.steps {
        let (x, y) = adding_problem(args.t, args.batch, &mut rng);
        let x = Var::new(Tensor::from_slice(&dev, &x, &[args.t, args.batch, 2])?);
        let y = Var::new(Tensor::from_slice(&dev, &y, &[args.batch, 1])?);
        let loss = F::mse_loss(&model.predict(&x)?, &y, LossReduction::Mean)?;
        model.zero_grad();
        loss.backward()?;
        let clip = clip_grad_norm_params(&params, 1.0)?;
        opt.step_params(&params, Some(&clip.scale))?;
        if (step + 1) % args.eval_every == 0 || step + 1 == args.steps {
            let _g = no_grad();
            test_mse =
                F::mse_loss(&model.predict(&test_x)?, &test_y, LossReduction::Mean)?.item()?;
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
