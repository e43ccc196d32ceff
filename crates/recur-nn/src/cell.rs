//! One-step cells (`torch.nn.LSTMCell`, `GRUCell`, `RNNCell`): the streaming
//! building block, one dispatch per step on the fused kernel.

use recur_gpu::ops::rnn::{self, Cell, RnnWeights};
use recur_gpu::{Device, Error, Result, Rng, Tensor};

/// A cell's state: h (B, H) and, for LSTM, c (B, H).
#[derive(Clone, Debug)]
pub struct RecurrentCellState {
    /// (B, H)
    pub h: Tensor,
    /// (B, H), LSTM only.
    pub c: Option<Tensor>,
}

/// A single recurrent step with PyTorch's cell parameters
/// (`weight_ih` (G·H, I), `weight_hh` (G·H, H), `bias_ih`, `bias_hh`).
#[derive(Clone, Debug)]
pub struct RecurrentCell {
    cell: Cell,
    /// (G·H, I)
    pub weight_ih: Tensor,
    /// (G·H, H)
    pub weight_hh: Tensor,
    /// (G·H)
    pub bias_ih: Option<Tensor>,
    /// (G·H)
    pub bias_hh: Option<Tensor>,
}

/// `torch.nn.LSTMCell`: a [`RecurrentCell`] with [`Cell::Lstm`].
pub type LstmCell = RecurrentCell;
/// `torch.nn.GRUCell`: a [`RecurrentCell`] with [`Cell::Gru`].
pub type GruCell = RecurrentCell;
/// `torch.nn.RNNCell`: a [`RecurrentCell`] with [`Cell::RnnTanh`] or [`Cell::RnnRelu`].
pub type RnnCell = RecurrentCell;

impl RecurrentCell {
    /// A cell initialised like PyTorch's (uniform ±1/√H).
    pub fn new(
        cell: Cell,
        input_size: usize,
        hidden_size: usize,
        bias: bool,
        device: &Device,
        rng: &mut Rng,
    ) -> Result<Self> {
        if input_size == 0 || hidden_size == 0 {
            return Err(Error::InvalidArgument {
                op: "RecurrentCell::new",
                what: "sizes must be positive".into(),
            });
        }
        let gh = cell.gates() * hidden_size;
        let k = 1.0 / (hidden_size as f32).sqrt();
        let mut u = |shape: &[usize]| Tensor::rand(device, shape, -k, k, rng);
        Ok(Self {
            cell,
            weight_ih: u(&[gh, input_size])?,
            weight_hh: u(&[gh, hidden_size])?,
            bias_ih: if bias { Some(u(&[gh])?) } else { None },
            bias_hh: if bias { Some(u(&[gh])?) } else { None },
        })
    }

    /// A cell from existing parameters (for example a layer's `_l0` tensors
    /// or a PyTorch `LSTMCell`'s), checking their shapes.
    pub fn from_parameters(
        cell: Cell,
        weight_ih: Tensor,
        weight_hh: Tensor,
        bias_ih: Option<Tensor>,
        bias_hh: Option<Tensor>,
    ) -> Result<Self> {
        let gh = weight_hh.shape().first().copied().unwrap_or(0);
        let ok = weight_hh.shape().len() == 2
            && gh == cell.gates() * weight_hh.shape()[1]
            && weight_ih.shape().len() == 2
            && weight_ih.shape()[0] == gh
            && [&bias_ih, &bias_hh]
                .iter()
                .all(|b| b.as_ref().is_none_or(|b| b.shape() == [gh]));
        if !ok {
            return Err(Error::ShapeMismatch {
                op: "RecurrentCell::from_parameters",
                expected: format!(
                    "weight_ih (G·H, I), weight_hh (G·H, H), biases (G·H) with G = {}",
                    cell.gates()
                ),
                got: weight_hh.shape().to_vec(),
            });
        }
        Ok(Self {
            cell,
            weight_ih,
            weight_hh,
            bias_ih,
            bias_hh,
        })
    }

    /// The cell type.
    pub fn cell(&self) -> Cell {
        self.cell
    }

    /// One step: `x` (B, I) from `state` (zeros when absent) to the new state.
    pub fn step(
        &self,
        x: &Tensor,
        state: Option<&RecurrentCellState>,
    ) -> Result<RecurrentCellState> {
        let [b, i] = *x.shape() else {
            return Err(Error::ShapeMismatch {
                op: "RecurrentCell::step",
                expected: "input (B, I)".into(),
                got: x.shape().to_vec(),
            });
        };
        let w = RnnWeights {
            w_ih: &self.weight_ih,
            w_hh: &self.weight_hh,
            b_ih: self.bias_ih.as_ref(),
            b_hh: self.bias_hh.as_ref(),
        };
        let c0 = state
            .and_then(|s| s.c.as_ref())
            .filter(|_| self.cell == Cell::Lstm);
        let out = rnn::rnn_forward(
            self.cell,
            &w,
            &x.reshape(&[1, b, i])?,
            state.map(|s| &s.h),
            c0,
            false,
            false,
        )?;
        Ok(RecurrentCellState {
            h: out.h_n,
            c: out.c_n,
        })
    }
}
