//! `Lstm`, `Gru` and `Rnn`: multi-layer, optionally bidirectional recurrent
//! layers with `torch.nn.LSTM/GRU/RNN` semantics, parameter names and shapes.
//!
//! With autograd, [`Recurrent::forward_var`] records the whole sequence
//! (every layer and direction) as one node. The explicit pair underneath is
//! public too: [`Recurrent::forward_train`] returns a [`RecurrentTape`], and
//! [`Recurrent::backward`] turns upstream gradients into gradients for the
//! input, the initial state and every named parameter.

use std::sync::{Arc, Mutex};

use recur_gpu::ops::rnn::{Cell, RnnCache, RnnStepWeights, RnnWeights};
use recur_gpu::{Device, Error, Result, Rng, Tensor};

mod run;

use crate::autograd::Var;
use crate::module::{Layer, Module, TrainingFlag};

/// Configuration mirroring `torch.nn.LSTM` / `GRU` / `RNN`.
#[derive(Clone, Copy, Debug)]
pub struct RecurrentConfig {
    /// The cell (`LSTM`, `GRU`, `RNN` with tanh or relu).
    pub cell: Cell,
    /// Features of the input (`input_size`).
    pub input_size: usize,
    /// Features of the hidden state (`hidden_size`).
    pub hidden_size: usize,
    /// Stacked layers (`num_layers`); layer k+1 reads layer k's output.
    pub num_layers: usize,
    /// Whether the layers have `bias_ih` and `bias_hh` (`bias`).
    pub bias: bool,
    /// Input and output are (B, T, F) instead of (T, B, F) (`batch_first`).
    /// The states h0/h_n stay (L·D, B, H), as in PyTorch.
    pub batch_first: bool,
    /// Dropout on the outputs of every layer but the last, in training
    /// (`dropout`; Srivastava et al. 2014, as PyTorch applies it).
    pub dropout: f32,
    /// A second, time-reversed direction per layer whose outputs are
    /// concatenated after the forward direction's (`bidirectional`).
    pub bidirectional: bool,
}

impl RecurrentConfig {
    /// A one-layer config for `cell`, with biases, time-major.
    pub fn new(cell: Cell, input_size: usize, hidden_size: usize) -> Self {
        Self {
            cell,
            input_size,
            hidden_size,
            num_layers: 1,
            bias: true,
            batch_first: false,
            dropout: 0.0,
            bidirectional: false,
        }
    }

    /// `torch.nn.LSTM(input_size, hidden_size)`.
    pub fn lstm(input_size: usize, hidden_size: usize) -> Self {
        Self::new(Cell::Lstm, input_size, hidden_size)
    }

    /// `torch.nn.GRU(input_size, hidden_size)`.
    pub fn gru(input_size: usize, hidden_size: usize) -> Self {
        Self::new(Cell::Gru, input_size, hidden_size)
    }

    /// `torch.nn.RNN(input_size, hidden_size)` (tanh).
    pub fn rnn(input_size: usize, hidden_size: usize) -> Self {
        Self::new(Cell::RnnTanh, input_size, hidden_size)
    }

    /// Directions per layer (1 or 2).
    pub fn directions(&self) -> usize {
        1 + self.bidirectional as usize
    }

    /// Builds the layer with PyTorch's initialisation: every parameter
    /// uniform in ±1/√hidden_size.
    pub fn init(&self, device: &Device, rng: &mut Rng) -> Result<Recurrent> {
        let bad = |what: String| Error::InvalidArgument {
            op: "RecurrentConfig::init",
            what,
        };
        if self.input_size == 0 || self.hidden_size == 0 || self.num_layers == 0 {
            return Err(bad(format!(
                "sizes and num_layers must be positive: {self:?}"
            )));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(bad(format!(
                "dropout must be in [0, 1), got {}",
                self.dropout
            )));
        }
        let (h, gh) = (self.hidden_size, self.cell.gates() * self.hidden_size);
        let k = 1.0 / (h as f32).sqrt();
        let mut layers = Vec::new();
        for l in 0..self.num_layers {
            let input = if l == 0 {
                self.input_size
            } else {
                h * self.directions()
            };
            for _ in 0..self.directions() {
                let mut u = |shape: &[usize]| {
                    Ok::<_, Error>(Var::param(Tensor::rand(device, shape, -k, k, rng)?))
                };
                layers.push(LayerParams {
                    w_ih: u(&[gh, input])?,
                    w_hh: u(&[gh, h])?,
                    b_ih: if self.bias { Some(u(&[gh])?) } else { None },
                    b_hh: if self.bias { Some(u(&[gh])?) } else { None },
                });
            }
        }
        Ok(Recurrent {
            config: *self,
            layers,
            device: device.clone(),
            training: TrainingFlag::default(),
            dropout_rng: Arc::new(Mutex::new(Rng::new(rng.next_u64()))),
        })
    }
}

/// Parameters of one layer and direction.
#[derive(Clone, Debug)]
pub struct LayerParams {
    /// `weight_ih_l{k}[_reverse]`: (G·H, input).
    pub w_ih: Var,
    /// `weight_hh_l{k}[_reverse]`: (G·H, H).
    pub w_hh: Var,
    /// `bias_ih_l{k}[_reverse]`: (G·H).
    pub b_ih: Option<Var>,
    /// `bias_hh_l{k}[_reverse]`: (G·H).
    pub b_hh: Option<Var>,
}

impl LayerParams {
    fn weights(&self) -> RnnWeights<'_> {
        RnnWeights {
            w_ih: self.w_ih.value(),
            w_hh: self.w_hh.value(),
            b_ih: self.b_ih.as_ref().map(Var::value),
            b_hh: self.b_hh.as_ref().map(Var::value),
        }
    }
}

/// A multi-layer recurrent network (LSTM, GRU or Elman RNN). Clones share
/// parameters, training mode and the dropout stream.
#[derive(Clone, Debug)]
pub struct Recurrent {
    config: RecurrentConfig,
    /// Index `layer * directions + direction`.
    layers: Vec<LayerParams>,
    device: Device,
    training: TrainingFlag,
    /// Draws the between-layer dropout masks of [`Recurrent::forward_var`].
    dropout_rng: Arc<Mutex<Rng>>,
}

/// [`Recurrent::forward_var`]'s results, in the graph.
#[derive(Clone, Debug)]
pub struct RecurrentVars {
    /// (T, B, D·H), or (B, T, D·H) with `batch_first`.
    pub output: Var,
    /// (L·D, B, H)
    pub h_n: Var,
    /// (L·D, B, H), LSTM only.
    pub c_n: Option<Var>,
}

/// `torch.nn.LSTM` is a [`Recurrent`] built with [`RecurrentConfig::lstm`].
pub type Lstm = Recurrent;
/// `torch.nn.GRU` is a [`Recurrent`] built with [`RecurrentConfig::gru`].
pub type Gru = Recurrent;
/// `torch.nn.RNN` is a [`Recurrent`] built with [`RecurrentConfig::rnn`].
pub type Rnn = Recurrent;

/// Forward results with PyTorch's shapes.
#[derive(Clone, Debug)]
pub struct RecurrentOutput {
    /// (T, B, D·H), or (B, T, D·H) with `batch_first`.
    pub output: Tensor,
    /// (L·D, B, H)
    pub h_n: Tensor,
    /// (L·D, B, H), LSTM only.
    pub c_n: Option<Tensor>,
}

/// What [`Recurrent::backward`] needs from [`Recurrent::forward_train`].
#[derive(Clone, Debug)]
pub struct RecurrentTape {
    caches: Vec<RnnCache>,
    /// Dropout masks (already scaled by 1/(1-p)) applied to layer outputs.
    masks: Vec<Option<Tensor>>,
    batch: usize,
}

/// Gradients from [`Recurrent::backward`].
#[derive(Clone, Debug)]
pub struct RecurrentGrads {
    /// Shaped like the input.
    pub dx: Tensor,
    /// (L·D, B, H)
    pub dh0: Tensor,
    /// (L·D, B, H), LSTM only.
    pub dc0: Option<Tensor>,
    /// Parameter gradients by PyTorch name, in [`Recurrent::named_parameters`] order.
    pub params: Vec<(String, Tensor)>,
}

impl Recurrent {
    /// Each layer's weights laid out for the one-dispatch inference step
    /// ([`recur_gpu::ops::rnn::rnn_infer_step`]), stored in `dtype`; a
    /// bidirectional layer cannot stream and is refused.
    pub fn step_weights(&self, dtype: recur_gpu::DType) -> Result<Vec<RnnStepWeights>> {
        if self.config.bidirectional {
            return Err(Error::InvalidArgument {
                op: "Recurrent::step_weights",
                what: "a bidirectional layer reads the future: it has no step form".into(),
            });
        }
        self.layers
            .iter()
            .map(|l| RnnStepWeights::new(self.config.cell, &l.weights(), dtype))
            .collect()
    }

    /// The configuration.
    pub fn config(&self) -> &RecurrentConfig {
        &self.config
    }

    fn suffix(&self, l: usize, d: usize) -> String {
        format!("l{l}{}", if d == 1 { "_reverse" } else { "" })
    }

    /// Overwrites the parameter called `name` (PyTorch naming) with
    /// `value`, which must have the same shape (in place: optimizers keep
    /// working on it).
    pub fn set_parameter(&self, name: &str, value: &Tensor) -> Result<()> {
        match self.named_parameters().into_iter().find(|(n, _)| n == name) {
            Some((_, p)) => p.assign(value).map_err(|_| Error::ShapeMismatch {
                op: "Recurrent::set_parameter",
                expected: format!("{name} of shape {:?}", p.shape()),
                got: value.shape().to_vec(),
            }),
            None => Err(Error::InvalidArgument {
                op: "Recurrent::set_parameter",
                what: format!("no parameter named {name:?}"),
            }),
        }
    }

    /// Overwrites every W_hh with an orthogonal matrix (`torch.nn.init.orthogonal_`),
    /// the initialisation of Saxe et al. (2014) for recurrent weights.
    pub fn init_orthogonal_hh(&self, rng: &mut Rng) -> Result<()> {
        for p in &self.layers {
            let (rows, cols) = (p.w_hh.shape()[0], p.w_hh.shape()[1]);
            let data = crate::init::orthogonal(rows, cols, 1.0, rng);
            p.w_hh
                .assign(&Tensor::from_slice(&self.device, &data, &[rows, cols])?)?;
        }
        Ok(())
    }

    /// The state of the stream that draws dropout masks, for checkpoints.
    pub fn dropout_rng_state(&self) -> u64 {
        self.dropout_rng
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .state()
    }

    /// Restores [`Recurrent::dropout_rng_state`].
    pub fn set_dropout_rng_state(&self, state: u64) {
        *self.dropout_rng.lock().unwrap_or_else(|e| e.into_inner()) = Rng::new(state);
    }
}

impl Module for Recurrent {
    /// PyTorch's names (`weight_ih_l0`, `bias_hh_l1_reverse`, ...) in PyTorch's order.
    fn named_parameters(&self) -> Vec<(String, Var)> {
        let mut out = Vec::new();
        for (idx, p) in self.layers.iter().enumerate() {
            let s = self.suffix(
                idx / self.config.directions(),
                idx % self.config.directions(),
            );
            out.push((format!("weight_ih_{s}"), p.w_ih.clone()));
            out.push((format!("weight_hh_{s}"), p.w_hh.clone()));
            if let (Some(bi), Some(bh)) = (&p.b_ih, &p.b_hh) {
                out.push((format!("bias_ih_{s}"), bi.clone()));
                out.push((format!("bias_hh_{s}"), bh.clone()));
            }
        }
        out
    }

    fn set_training(&self, training: bool) {
        self.training.set(training);
    }
}

impl Layer for Recurrent {
    /// The output sequence from a zero initial state (the final states are
    /// dropped; use [`Recurrent::forward_var`] for them).
    fn forward(&self, x: &Var) -> Result<Var> {
        Ok(self.forward_var(x, None, None)?.output)
    }
}
