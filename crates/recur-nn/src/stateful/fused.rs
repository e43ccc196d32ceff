//! The inference form of a [`SequenceLm`] of a PyTorch-style family (LSTM,
//! GRU, RNN): built once from trained weights, it advances every stream by
//! one token with one embedding gather, one fused dispatch per layer
//! ([`rnn_infer_step_into`], weights transposed once, optionally f16) and
//! one head GEMM, with no autograd and the cell state updated in place.
//! It reads and writes the model's own [`State`] layout (`h`, and `c` for
//! an LSTM, (L, B, H) with the batch at axis 1), so a state moves freely
//! between it and [`SequenceLm::step`].

use recur_gpu::ops::embedding::embedding;
use recur_gpu::ops::gemm::Gemm;
use recur_gpu::ops::layout::{slice, transpose};
use recur_gpu::ops::rnn::{rnn_infer_step_into, Cell, RnnStepWeights, StepIo};
use recur_gpu::{DType, Error, Result, Tensor};

use super::{SequenceLm, State};
use crate::autograd::Var;

/// A [`SequenceLm`] laid out for streaming inference.
pub struct FusedLm {
    cell: Cell,
    layers: Vec<RnnStepWeights>,
    /// (V, E), shared with the model.
    table: Tensor,
    /// (H, V)
    head_t: Tensor,
    head_b: Option<Tensor>,
    hidden: usize,
}

impl SequenceLm {
    /// The inference form, its layer weights stored in `dtype` (F32, or
    /// F16 where the adapter has SHADER_F16); an error for the families
    /// without a fused cell.
    pub fn fused(&self, dtype: DType) -> Result<FusedLm> {
        let Some(rnn) = self.recurrent() else {
            return Err(Error::InvalidArgument {
                op: "SequenceLm::fused",
                what: format!(
                    "{} has no fused inference step (lstm, gru and rnn do)",
                    self.config().family.name()
                ),
            });
        };
        Ok(FusedLm {
            cell: rnn.config().cell,
            layers: rnn.step_weights(dtype)?,
            table: self.embedding.weight.value().clone(),
            head_t: transpose(self.out.weight.value())?,
            head_b: self.out.bias.as_ref().map(|b| b.value().clone()),
            hidden: rnn.config().hidden_size,
        })
    }
}

impl FusedLm {
    /// Dispatches per token over the whole state: the gather, one per
    /// layer, the copy of the top layer's rows when there are several
    /// layers, the head.
    pub fn dispatches_per_step(&self) -> usize {
        self.layers.len() + 2 + usize::from(self.layers.len() > 1)
    }

    /// One token per stream, ids (B): logits (B, vocab) and the next state.
    /// `active` (B), when given, lists the streams that step; the others
    /// keep their state (their logits are computed and meaningless). The
    /// state is consumed: its `c` is updated in place (a clone taken before
    /// sees it change; [`State::slice`] copies), `h` is written into a new
    /// buffer.
    pub fn step(
        &self,
        ids: &Tensor,
        state: State,
        active: Option<&[bool]>,
    ) -> Result<(Tensor, State)> {
        let b = state.batch();
        self.step_first(ids, state, active, b)
    }

    /// [`FusedLm::step`] for the first `rows` streams of `state` only:
    /// ids, `active` and the logits have `rows` rows, and the state of
    /// streams `rows..` is left unspecified (a pool steps the prefix of its
    /// slots that holds every open stream, and resets a slot on opening it).
    pub fn step_first(
        &self,
        ids: &Tensor,
        state: State,
        active: Option<&[bool]>,
        rows: usize,
    ) -> Result<(Tensor, State)> {
        let op = "FusedLm::step";
        let dev = ids.device(op)?;
        let cap = state.batch();
        let b = rows;
        if b == 0 || b > cap || ids.shape() != [b] {
            return Err(Error::ShapeMismatch {
                op,
                expected: format!("ids for 1 to {cap} streams of the state, {b} asked for"),
                got: ids.shape().to_vec(),
            });
        }
        let (l, h) = (self.layers.len(), self.hidden);
        let h_in = state.get(op, "h")?.value().clone();
        if h_in.shape() != [l, cap, h] {
            return Err(Error::ShapeMismatch {
                op,
                expected: format!("h of shape ({l}, {cap}, {h})"),
                got: h_in.shape().to_vec(),
            });
        }
        let c = match self.cell {
            Cell::Lstm => Some(state.get(op, "c")?.value().clone()),
            _ => None,
        };
        if let Some(c) = &c {
            if c.shape() != h_in.shape() {
                return Err(Error::ShapeMismatch {
                    op,
                    expected: format!("c of shape ({l}, {cap}, {h})"),
                    got: c.shape().to_vec(),
                });
            }
        }
        let mut steps = state.steps().to_vec();
        let mask = match active {
            None => {
                steps[..b].iter_mut().for_each(|s| *s += 1);
                None
            }
            Some(a) if a.len() == b => {
                let m: Vec<f32> = a.iter().map(|&on| f32::from(u8::from(on))).collect();
                for (s, &on) in steps.iter_mut().zip(a) {
                    *s += usize::from(on);
                }
                Some(Tensor::from_slice(&dev, &m, &[b])?)
            }
            Some(a) => {
                return Err(Error::ShapeMismatch {
                    op,
                    expected: format!("an active flag per stream ({b})"),
                    got: vec![a.len()],
                })
            }
        };
        let x0 = embedding(&self.table, ids)?;
        let h_out = Tensor::uninit(&dev, &[l, cap, h], DType::F32)?;
        for (k, w) in self.layers.iter().enumerate() {
            let (x, x_offset) = match k {
                0 => (&x0, 0),
                _ => (&h_out, (k - 1) * cap * h),
            };
            let io = StepIo {
                batch: b,
                x,
                x_offset,
                h_in: &h_in,
                h_out: &h_out,
                c: c.as_ref(),
                h_offset: k * cap * h,
                mask: mask.as_ref(),
            };
            rnn_infer_step_into(w, &io)?;
        }
        let top = match (l, b == cap) {
            (1, true) => h_out.reshape(&[b, h])?,
            _ => slice(&h_out.reshape(&[l * cap, h])?, 0, (l - 1) * cap, b)?,
        };
        let logits = Gemm::default().run(&top, &self.head_t, self.head_b.as_ref())?;
        let mut next = State::at_steps(steps).with("h", Var::new(h_out), 1)?;
        if let Some(c) = c {
            next = next.with("c", Var::new(c), 1)?;
        }
        Ok((logits, next))
    }
}
