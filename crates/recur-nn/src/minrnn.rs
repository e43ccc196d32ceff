//! minGRU and minLSTM (Feng et al. 2024, "Were RNNs all we needed?"): the
//! gates depend on the input only, so the recurrence is a first-order linear
//! scan that trains in parallel over time, in log space (Heinsen 2023):
//!
//! ```text
//! minGRU:  z = σ(W_z x),  h̃ = W_h x,  h_t = (1 − z) ⊙ h_{t−1} + z ⊙ g(h̃)
//! minLSTM: f = σ(W_f x), i = σ(W_i x), f' = f/(f+i), i' = i/(f+i),
//!          h_t = f' ⊙ h_{t−1} + i' ⊙ g(W_h x)
//! g(x) = x + 0.5 for x ≥ 0, σ(x) otherwise  (so every h_t > 0)
//! ```
//!
//! [`MinRnn::forward_with_state`] runs a whole sequence with one log-space scan;
//! [`MinRnn::step`] runs one token in linear space with constant memory (a
//! different computation: tests check both agree). [`MinRnnBlock`] is the
//! paper's language-model block: pre-RMSNorm, the cell, a residual, then a
//! pre-RMSNorm MLP with a residual.

use recur_gpu::ops::scan::{ScanKind, ScanLayout};
use recur_gpu::ops::Activation;
use recur_gpu::{Device, Error, Result, Rng, Tensor};

use crate::autograd::Var;
use crate::functional as F;
use crate::layers::RmsNorm;
use crate::linear::{Linear, LinearConfig};
use crate::module::{prefixed, Layer, Module};

/// Which cell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MinCell {
    /// minGRU: an update gate z.
    Gru,
    /// minLSTM: forget and input gates, normalised to sum to one.
    Lstm,
}

/// Configuration of a [`MinRnn`].
#[derive(Clone, Copy, Debug)]
pub struct MinRnnConfig {
    /// The cell.
    pub cell: MinCell,
    /// Input features.
    pub input_size: usize,
    /// State features.
    pub hidden_size: usize,
    /// Inputs and outputs are (B, T, F) (default) instead of (T, B, F).
    pub batch_first: bool,
}

impl MinRnnConfig {
    /// A minGRU, batch-first.
    pub fn min_gru(input_size: usize, hidden_size: usize) -> Self {
        Self {
            cell: MinCell::Gru,
            input_size,
            hidden_size,
            batch_first: true,
        }
    }

    /// A minLSTM, batch-first.
    pub fn min_lstm(input_size: usize, hidden_size: usize) -> Self {
        Self {
            cell: MinCell::Lstm,
            ..Self::min_gru(input_size, hidden_size)
        }
    }

    /// Builds the layer; its linear maps have PyTorch's default init.
    pub fn init(&self, device: &Device, rng: &mut Rng) -> Result<MinRnn> {
        if self.input_size == 0 || self.hidden_size == 0 {
            return Err(Error::InvalidArgument {
                op: "MinRnnConfig::init",
                what: format!("sizes must be positive: {self:?}"),
            });
        }
        let mut lin = || LinearConfig::new(self.input_size, self.hidden_size).init(device, rng);
        let gates = match self.cell {
            MinCell::Gru => vec![lin()?],
            MinCell::Lstm => vec![lin()?, lin()?],
        };
        Ok(MinRnn {
            config: *self,
            gates,
            linear_h: lin()?,
        })
    }
}

/// A minGRU or minLSTM layer. Parameters are named as in the paper's code:
/// `linear_z.*` (minGRU) or `linear_f.*`, `linear_i.*` (minLSTM), and
/// `linear_h.*`.
#[derive(Clone, Debug)]
pub struct MinRnn {
    config: MinRnnConfig,
    /// [W_z] or [W_f, W_i].
    gates: Vec<Linear>,
    linear_h: Linear,
}

impl MinRnn {
    /// The configuration.
    pub fn config(&self) -> &MinRnnConfig {
        &self.config
    }

    /// (log a, log b) of the scan for inputs `x` (.., I): the log of the
    /// carried fraction and of the new contribution.
    fn log_coefficients(&self, x: &Var) -> Result<(Var, Var)> {
        let log_tilde = F::activation(&self.linear_h.forward(x)?, Activation::LogG)?;
        let (log_a, log_gate) = match self.config.cell {
            MinCell::Gru => {
                let k = self.gates[0].forward(x)?;
                (
                    F::activation(&F::scale(&k, -1.0)?, Activation::LogSigmoid)?,
                    F::activation(&k, Activation::LogSigmoid)?,
                )
            }
            MinCell::Lstm => {
                let diff = self.gate_diff(x)?;
                (
                    F::activation(&F::scale(&diff, -1.0)?, Activation::LogSigmoid)?,
                    F::activation(&diff, Activation::LogSigmoid)?,
                )
            }
        };
        Ok((log_a, F::add(&log_gate, &log_tilde)?))
    }

    /// minLSTM's log(i/f) = softplus(−f̂) − softplus(−î): f' = σ(−diff), i' = σ(diff).
    fn gate_diff(&self, x: &Var) -> Result<Var> {
        let sp = |l: &Linear| -> Result<Var> {
            F::activation(&F::scale(&l.forward(x)?, -1.0)?, Activation::Softplus)
        };
        F::sub(&sp(&self.gates[0])?, &sp(&self.gates[1])?)
    }

    fn check(&self, op: &'static str, x: &Var, rank: usize) -> Result<()> {
        let s = x.shape();
        if s.len() != rank || s.last() != Some(&self.config.input_size) || s.contains(&0) {
            return Err(Error::ShapeMismatch {
                op,
                expected: format!(
                    "{} with I = {}",
                    if rank == 3 {
                        "(B, T, I) or (T, B, I)"
                    } else {
                        "(B, I)"
                    },
                    self.config.input_size
                ),
                got: s.to_vec(),
            });
        }
        Ok(())
    }

    /// The whole sequence in parallel: inputs (B, T, I) (or (T, B, I) when
    /// not batch-first) and an optional initial state `h0` (B, H) of any
    /// sign. Returns every h_t and the final state (B, H).
    ///
    /// The zero-state part runs as one log-space scan (every term is
    /// positive); since h_t is linear in h0, an initial state adds
    /// (∏_{s≤t} a_s) ⊙ h0, the linear-space scan of (a, 0) from h0, so
    /// negative states are exact too. (`Layer::forward` is the same from a
    /// zero state.)
    pub fn forward_with_state(&self, x: &Var, h0: Option<&Var>) -> Result<(Var, Var)> {
        self.check("MinRnn::forward", x, 3)?;
        let batch = x.shape()[if self.config.batch_first { 0 } else { 1 }];
        if let Some(h0) = h0 {
            if h0.shape() != [batch, self.config.hidden_size] {
                return Err(Error::ShapeMismatch {
                    op: "MinRnn::forward",
                    expected: format!("h0 ({batch}, {})", self.config.hidden_size),
                    got: h0.shape().to_vec(),
                });
            }
        }
        let (log_a, log_b) = self.log_coefficients(x)?;
        let layout = if self.config.batch_first {
            ScanLayout::BatchFirst
        } else {
            ScanLayout::TimeMajor
        };
        let (log_h, log_last) = F::scan(ScanKind::Log, &log_a, &log_b, None, layout)?;
        let h = F::activation(&log_h, Activation::Exp)?;
        let last = F::activation(&log_last, Activation::Exp)?;
        let Some(h0) = h0 else {
            return Ok((h, last));
        };
        let a = F::activation(&log_a, Activation::Exp)?;
        let dev = h0.value().device("MinRnn::forward")?;
        let zeros = Var::new(Tensor::zeros(&dev, a.shape())?);
        let (carried, carried_last) = F::scan(ScanKind::Linear, &a, &zeros, Some(h0), layout)?;
        Ok((F::add(&h, &carried)?, F::add(&last, &carried_last)?))
    }

    /// One step in linear space: input (B, I), previous state (B, H) (zeros
    /// when absent); returns the new state.
    pub fn step(&self, x: &Var, h: Option<&Var>) -> Result<Var> {
        self.check("MinRnn::step", x, 2)?;
        let cand = F::activation(
            &F::activation(&self.linear_h.forward(x)?, Activation::LogG)?,
            Activation::Exp,
        )?;
        let pre = match self.config.cell {
            MinCell::Gru => self.gates[0].forward(x)?,
            MinCell::Lstm => self.gate_diff(x)?,
        };
        // h = σ(−pre) h_prev + σ(pre) g(h̃)
        let new = F::mul(&F::sigmoid(&pre)?, &cand)?;
        match h {
            None => Ok(new),
            Some(h) => F::add(&F::mul(&F::sigmoid(&F::scale(&pre, -1.0)?)?, h)?, &new),
        }
    }
}

impl Module for MinRnn {
    fn named_parameters(&self) -> Vec<(String, Var)> {
        let names: &[&str] = match self.config.cell {
            MinCell::Gru => &["linear_z"],
            MinCell::Lstm => &["linear_f", "linear_i"],
        };
        let mut v: Vec<(String, Var)> = names
            .iter()
            .zip(&self.gates)
            .flat_map(|(n, l)| prefixed(n, l))
            .collect();
        v.extend(prefixed("linear_h", &self.linear_h));
        v
    }
}

impl Layer for MinRnn {
    /// Every h_t from a zero initial state.
    fn forward(&self, x: &Var) -> Result<Var> {
        Ok(self.forward_with_state(x, None)?.0)
    }
}

/// The paper's language-model block (width d): `x + cell(RMSNorm(x))`, then
/// `y + MLP(RMSNorm(y))` with MLP = Linear(d, 4d) → SiLU → Linear(4d, d).
/// With `residual` off, the two sums become `cell(RMSNorm(x))` and
/// `MLP(RMSNorm(y))`.
#[derive(Clone, Debug)]
pub struct MinRnnBlock {
    /// Before the cell.
    pub norm1: RmsNorm,
    /// The recurrence (d → d).
    pub cell: MinRnn,
    /// Before the MLP.
    pub norm2: RmsNorm,
    /// d → 4d.
    pub up: Linear,
    /// 4d → d.
    pub down: Linear,
    /// Residual connections around the cell and the MLP (on by default).
    pub residual: bool,
}

impl MinRnnBlock {
    /// A block of width `d` around a cell of kind `cell`, for (B, T, d)
    /// inputs when `batch_first`, (T, B, d) otherwise.
    pub fn new(
        device: &Device,
        cell: MinCell,
        d: usize,
        batch_first: bool,
        rng: &mut Rng,
    ) -> Result<Self> {
        Ok(Self {
            norm1: RmsNorm::new(device, d, 1e-6)?,
            cell: MinRnnConfig {
                cell,
                batch_first,
                ..MinRnnConfig::min_gru(d, d)
            }
            .init(device, rng)?,
            norm2: RmsNorm::new(device, d, 1e-6)?,
            up: LinearConfig::new(d, 4 * d).init(device, rng)?,
            down: LinearConfig::new(4 * d, d).init(device, rng)?,
            residual: true,
        })
    }

    /// The block over a sequence from `h0` (B, d); returns the
    /// outputs and the cell's final state.
    pub fn forward_state(&self, x: &Var, h0: Option<&Var>) -> Result<(Var, Var)> {
        let (h, last) = self.cell.forward_with_state(&self.norm1.forward(x)?, h0)?;
        Ok((self.finish(x, h)?, last))
    }

    /// The residual (or not) around the cell's output `h`, then the MLP.
    fn finish(&self, x: &Var, h: Var) -> Result<Var> {
        if !self.residual {
            return self.mlp(&h);
        }
        let y = F::add(x, &h)?;
        F::add(&y, &self.mlp(&y)?)
    }

    /// One token (B, d) from state `h` (B, d): the output and the new state.
    pub fn step(&self, x: &Var, h: Option<&Var>) -> Result<(Var, Var)> {
        let h = self.cell.step(&self.norm1.forward(x)?, h)?;
        Ok((self.finish(x, h.clone())?, h))
    }

    fn mlp(&self, y: &Var) -> Result<Var> {
        let u = self.up.forward(&self.norm2.forward(y)?)?;
        self.down.forward(&F::activation(&u, Activation::Silu)?)
    }
}

impl Module for MinRnnBlock {
    fn named_parameters(&self) -> Vec<(String, Var)> {
        let mut v = prefixed("norm1", &self.norm1);
        v.extend(prefixed("cell", &self.cell));
        v.extend(prefixed("norm2", &self.norm2));
        v.extend(prefixed("up", &self.up));
        v.extend(prefixed("down", &self.down));
        v
    }
}

impl Layer for MinRnnBlock {
    fn forward(&self, x: &Var) -> Result<Var> {
        Ok(self.forward_state(x, None)?.0)
    }
}
