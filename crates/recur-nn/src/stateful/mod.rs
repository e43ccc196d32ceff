//! One stateful API for every sequence layer: [`Stateful`] runs a whole
//! sequence from a [`State`] and returns the next one, or advances one step;
//! the state is a typed value of named tensors, each with the axis that
//! indexes the batch, so it can be checkpointed, sliced by stream and
//! written back ([`State::slice`], [`State::write`]), which is what a
//! stream pool ([`StreamPool`]) needs.
//!
//! Every layer family implements it: PyTorch's LSTM/GRU/RNN
//! ([`crate::Recurrent`]), minGRU/minLSTM and their blocks, Mamba and
//! Mamba-2 (bare and in their residual blocks), linear attention, RetNet's
//! retention and GLA, and a stack of them ([`Stack`]). A language model
//! over any of them ([`SequenceLm`]) carries one [`State`] too.

mod fused;
mod impls;
mod lm;
mod pool;
mod stack;

pub use fused::FusedLm;
pub use lm::{sample_token, Family, SequenceLm, SequenceLmConfig};
pub use pool::{StreamId, StreamPool};
pub use stack::{PreNorm, Stack};

use recur_gpu::ops::layout;
use recur_gpu::{Device, Error, Result, Tensor};

use crate::autograd::Var;
use crate::functional as F;
use crate::module::Module;

/// One tensor of a [`State`]: its name, value and batch axis.
#[derive(Clone, Debug)]
pub struct StateTensor {
    /// Its name (`h`, `c`, `conv`, `ssm`, `s`; prefixed by position in a
    /// stack: `0.h`).
    pub name: String,
    /// The tensor.
    pub value: Var,
    /// The axis that indexes the batch (streams).
    pub batch_axis: usize,
}

/// A layer's state between calls: named tensors over a batch of streams,
/// and the number of steps each stream has taken.
#[derive(Clone, Debug, Default)]
pub struct State {
    tensors: Vec<StateTensor>,
    steps: Vec<usize>,
}

impl State {
    /// An empty state for `batch` streams at step 0.
    pub fn new(batch: usize) -> Self {
        Self {
            tensors: Vec::new(),
            steps: vec![0; batch],
        }
    }

    /// An empty state for streams that have taken `steps`.
    pub fn at_steps(steps: Vec<usize>) -> Self {
        Self {
            tensors: Vec::new(),
            steps,
        }
    }

    /// Adds the tensor `name`, whose `batch_axis` must have the state's
    /// batch size.
    pub fn with(mut self, name: &str, value: Var, batch_axis: usize) -> Result<Self> {
        if value.shape().get(batch_axis) != Some(&self.batch()) {
            return Err(Error::ShapeMismatch {
                op: "State::with",
                expected: format!("{name} with {} streams on axis {batch_axis}", self.batch()),
                got: value.shape().to_vec(),
            });
        }
        self.tensors.push(StateTensor {
            name: name.to_string(),
            value,
            batch_axis,
        });
        Ok(self)
    }

    /// Streams (batch rows).
    pub fn batch(&self) -> usize {
        self.steps.len()
    }

    /// Steps each stream has taken.
    pub fn steps(&self) -> &[usize] {
        &self.steps
    }

    /// The tensors, in the order they were added.
    pub fn tensors(&self) -> &[StateTensor] {
        &self.tensors
    }

    /// The tensor `name`; an error naming `op` and the names there are if
    /// it is missing.
    pub fn get(&self, op: &'static str, name: &str) -> Result<&Var> {
        self.tensors
            .iter()
            .find(|t| t.name == name)
            .map(|t| &t.value)
            .ok_or_else(|| Error::InvalidArgument {
                op,
                what: format!(
                    "the state has no tensor {name:?} (it has {:?})",
                    self.tensors.iter().map(|t| &t.name).collect::<Vec<_>>()
                ),
            })
    }

    /// The same tensors with every stream `n` steps further.
    pub fn advanced(mut self, n: usize) -> Self {
        self.steps.iter_mut().for_each(|s| *s += n);
        self
    }

    /// The tensors without gradient history (TBPTT's carry).
    pub fn detach(&self) -> Self {
        Self {
            tensors: self
                .tensors
                .iter()
                .map(|t| StateTensor {
                    value: t.value.detach(),
                    ..t.clone()
                })
                .collect(),
            steps: self.steps.clone(),
        }
    }

    /// `parts` (the states of a stack's layers, each for the same streams)
    /// as one state, tensor names prefixed by the part's index.
    pub fn join(parts: Vec<State>, batch: usize) -> Result<Self> {
        let mut out = State::new(batch);
        for (i, p) in parts.into_iter().enumerate() {
            if p.batch() != batch {
                return Err(batch_error("State::join", batch, p.batch()));
            }
            out.steps = p.steps;
            for t in p.tensors {
                out.tensors.push(StateTensor {
                    name: format!("{i}.{}", t.name),
                    ..t
                });
            }
        }
        Ok(out)
    }

    /// The tensors named `prefix.*`, without the prefix.
    pub fn part(&self, prefix: &str) -> Self {
        let p = format!("{prefix}.");
        Self {
            tensors: self
                .tensors
                .iter()
                .filter_map(|t| {
                    t.name.strip_prefix(&p).map(|n| StateTensor {
                        name: n.to_string(),
                        ..t.clone()
                    })
                })
                .collect(),
            steps: self.steps.clone(),
        }
    }

    /// Streams `start..start + len` as a state of their own (copies).
    pub fn slice(&self, start: usize, len: usize) -> Result<Self> {
        let op = "State::slice";
        if start.checked_add(len).is_none_or(|e| e > self.batch()) {
            return Err(Error::InvalidArgument {
                op,
                what: format!("streams {start}..{} of {}", start + len, self.batch()),
            });
        }
        let mut out = State::at_steps(self.steps[start..start + len].to_vec());
        for t in &self.tensors {
            let v = layout::slice(t.value.value(), t.batch_axis, start, len)?;
            out.tensors.push(StateTensor {
                value: Var::new(v),
                ..t.clone()
            });
        }
        Ok(out)
    }

    /// Writes `src` (a state with the same tensors) into streams `start..`,
    /// in place: every holder of these tensors sees the change.
    pub fn write(&mut self, start: usize, src: &State) -> Result<()> {
        let op = "State::write";
        if start + src.batch() > self.batch() || src.tensors.len() != self.tensors.len() {
            return Err(Error::InvalidArgument {
                op,
                what: format!(
                    "{} streams of {} tensors at {start} into {} streams of {}",
                    src.batch(),
                    src.tensors.len(),
                    self.batch(),
                    self.tensors.len()
                ),
            });
        }
        for (d, s) in self.tensors.iter().zip(&src.tensors) {
            if d.name != s.name || d.batch_axis != s.batch_axis {
                return Err(Error::InvalidArgument {
                    op,
                    what: format!("tensor {:?} where {:?} was expected", s.name, d.name),
                });
            }
            layout::write_slice(d.value.value(), d.batch_axis, start, s.value.value())?;
        }
        self.steps[start..start + src.batch()].copy_from_slice(&src.steps);
        Ok(())
    }

    /// Zeros in streams `start..start + len`, their step counts back to 0.
    pub fn reset(&mut self, start: usize, len: usize) -> Result<()> {
        let zeros = self.slice(start, len)?.zeroed()?;
        self.write(start, &zeros)
    }

    /// The same shapes, all zeros, at step 0.
    pub fn zeroed(&self) -> Result<Self> {
        let mut out = State::new(self.batch());
        for t in &self.tensors {
            let dev = t.value.value().device("State::zeroed")?;
            out.tensors.push(StateTensor {
                value: Var::new(Tensor::zeros(&dev, t.value.shape())?),
                ..t.clone()
            });
        }
        Ok(out)
    }

    /// The tensors under their names (for a checkpoint), with the step
    /// counts as `steps`.
    pub fn named_tensors(&self, device: &Device) -> Result<Vec<(String, Tensor)>> {
        let mut v: Vec<(String, Tensor)> = self
            .tensors
            .iter()
            .map(|t| (t.name.clone(), t.value.value().clone()))
            .collect();
        let steps: Vec<f32> = self.steps.iter().map(|&s| s as f32).collect();
        v.push((
            "steps".into(),
            Tensor::from_slice(device, &steps, &[steps.len()])?,
        ));
        Ok(v)
    }
}

pub(crate) fn batch_error(op: &'static str, want: usize, got: usize) -> Error {
    Error::ShapeMismatch {
        op,
        expected: format!("a state for {want} streams"),
        got: vec![got],
    }
}

/// A sequence layer that carries state: PyTorch's recurrent layers,
/// minGRU/minLSTM, Mamba, Mamba-2, the linear-attention family, their
/// blocks and stacks of them. Sequences are batch-first (B, T, D).
pub trait Stateful: Module {
    /// The sequence `x` (B, T, D) from `state` (the zero state when
    /// absent): the outputs (B, T, D_out) and the state after the last
    /// step.
    fn forward_state(&self, x: &Var, state: Option<&State>) -> Result<(Var, State)>;

    /// One step `x` (B, D) from `state`: the output (B, D_out) and the next
    /// state; equal to [`Stateful::forward_state`] over T = 1.
    fn step(&self, x: &Var, state: Option<&State>) -> Result<(Var, State)> {
        let [b, d] = *x.shape() else {
            return Err(Error::ShapeMismatch {
                op: "Stateful::step",
                expected: "x of shape (B, D)".into(),
                got: x.shape().to_vec(),
            });
        };
        let (y, s) = self.forward_state(&F::reshape(x, &[b, 1, d])?, state)?;
        let dy = y.shape()[2];
        Ok((F::reshape(&y, &[b, dy])?, s))
    }

    /// The state that an absent one stands for, for `batch` streams.
    fn zero_state(&self, device: &Device, batch: usize) -> Result<State>;
}

/// The batch size of a batch-first sequence, or a typed error naming `op`.
pub(crate) fn batch_of(op: &'static str, x: &Var) -> Result<(usize, usize)> {
    match *x.shape() {
        [b, t, _] if b > 0 && t > 0 => Ok((b, t)),
        _ => Err(Error::ShapeMismatch {
            op,
            expected: "a non-empty batch-first sequence (B, T, D)".into(),
            got: x.shape().to_vec(),
        }),
    }
}

/// `state`, or `layer`'s zero state, checked against `batch`.
pub(crate) fn or_zero(
    op: &'static str,
    layer: &dyn Stateful,
    x: &Var,
    state: Option<&State>,
    batch: usize,
) -> Result<State> {
    match state {
        Some(s) if s.batch() == batch => Ok(s.clone()),
        Some(s) => Err(batch_error(op, batch, s.batch())),
        None => layer.zero_state(&x.value().device(op)?, batch),
    }
}
