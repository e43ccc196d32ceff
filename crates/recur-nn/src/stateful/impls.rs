//! [`Stateful`] for every layer family: each maps its own state type to
//! named tensors and back.

use recur_gpu::ops::rnn::Cell;
use recur_gpu::{Device, Result, Tensor};

use super::stack::residual;
use super::{batch_of, or_zero, State, Stateful};
use crate::attention::{AttentionState, GatedLinearAttention, LinearAttention, Retention};
use crate::autograd::Var;
use crate::functional as F;
use crate::mamba::{Mamba, MambaState};
use crate::mamba2::{Mamba2, Mamba2State};
use crate::mamba_lm::{MambaBlock, Mixer};
use crate::minrnn::{MinRnn, MinRnnBlock};
use crate::recurrent::Recurrent;

fn zeros(device: &Device, shape: &[usize]) -> Result<Var> {
    Ok(Var::new(Tensor::zeros(device, shape)?))
}

/// (B, T, D) in, the layer's own layout inside: batch-first or time-major.
fn to_layout(x: &Var, batch_first: bool) -> Result<Var> {
    if batch_first {
        Ok(x.clone())
    } else {
        F::swap01(x)
    }
}

/// PyTorch's LSTM/GRU/RNN: `h` (and `c` for an LSTM), (L·D, B, H).
impl Stateful for Recurrent {
    fn forward_state(&self, x: &Var, state: Option<&State>) -> Result<(Var, State)> {
        let op = "Recurrent::forward_state";
        let (b, t) = batch_of(op, x)?;
        let s = or_zero(op, self, x, state, b)?;
        let lstm = self.config().cell == Cell::Lstm;
        let c0 = if lstm { Some(s.get(op, "c")?) } else { None };
        let bf = self.config().batch_first;
        let o = self.forward_var(&to_layout(x, bf)?, Some(s.get(op, "h")?), c0)?;
        let mut next = State::at_steps(s.steps().to_vec()).with("h", o.h_n, 1)?;
        if let Some(c) = o.c_n {
            next = next.with("c", c, 1)?;
        }
        Ok((to_layout(&o.output, bf)?, next.advanced(t)))
    }

    fn zero_state(&self, device: &Device, batch: usize) -> Result<State> {
        let c = self.config();
        let shape = [c.num_layers * c.directions(), batch, c.hidden_size];
        let s = State::new(batch).with("h", zeros(device, &shape)?, 1)?;
        if c.cell == Cell::Lstm {
            return s.with("c", zeros(device, &shape)?, 1);
        }
        Ok(s)
    }
}

/// minGRU / minLSTM: `h` (B, H).
impl Stateful for MinRnn {
    fn forward_state(&self, x: &Var, state: Option<&State>) -> Result<(Var, State)> {
        let op = "MinRnn::forward_state";
        let (b, t) = batch_of(op, x)?;
        let s = or_zero(op, self, x, state, b)?;
        let bf = self.config().batch_first;
        let (y, last) = self.forward_with_state(&to_layout(x, bf)?, Some(s.get(op, "h")?))?;
        let next = State::at_steps(s.steps().to_vec()).with("h", last, 0)?;
        Ok((to_layout(&y, bf)?, next.advanced(t)))
    }

    fn step(&self, x: &Var, state: Option<&State>) -> Result<(Var, State)> {
        let op = "MinRnn::step";
        let s = step_state(op, self, x, state)?;
        let h = MinRnn::step(self, x, Some(s.get(op, "h")?))?;
        let next = State::at_steps(s.steps().to_vec()).with("h", h.clone(), 0)?;
        Ok((h, next.advanced(1)))
    }

    fn zero_state(&self, device: &Device, batch: usize) -> Result<State> {
        let h = zeros(device, &[batch, self.config().hidden_size])?;
        State::new(batch).with("h", h, 0)
    }
}

/// The minGRU / minLSTM block: its cell's `h` (B, d).
impl Stateful for MinRnnBlock {
    fn forward_state(&self, x: &Var, state: Option<&State>) -> Result<(Var, State)> {
        let op = "MinRnnBlock::forward_state";
        let (b, t) = batch_of(op, x)?;
        let s = or_zero(op, self, x, state, b)?;
        let bf = self.cell.config().batch_first;
        let (y, last) =
            MinRnnBlock::forward_state(self, &to_layout(x, bf)?, Some(s.get(op, "h")?))?;
        let next = State::at_steps(s.steps().to_vec()).with("h", last, 0)?;
        Ok((to_layout(&y, bf)?, next.advanced(t)))
    }

    fn step(&self, x: &Var, state: Option<&State>) -> Result<(Var, State)> {
        let op = "MinRnnBlock::step";
        let s = step_state(op, self, x, state)?;
        let (y, h) = MinRnnBlock::step(self, x, Some(s.get(op, "h")?))?;
        let next = State::at_steps(s.steps().to_vec()).with("h", h, 0)?;
        Ok((y, next.advanced(1)))
    }

    fn zero_state(&self, device: &Device, batch: usize) -> Result<State> {
        self.cell.zero_state(device, batch)
    }
}

/// `state` or the zero state for a step's input (B, D).
fn step_state(
    op: &'static str,
    layer: &dyn Stateful,
    x: &Var,
    state: Option<&State>,
) -> Result<State> {
    let b = match *x.shape() {
        [b, _] if b > 0 => b,
        _ => {
            return Err(recur_gpu::Error::ShapeMismatch {
                op,
                expected: "a step's input (B, D)".into(),
                got: x.shape().to_vec(),
            })
        }
    };
    or_zero(op, layer, x, state, b)
}

/// Mamba and Mamba-2: `conv` (B, channels, d_conv) and `ssm` (Mamba:
/// (B, d_inner, d_state); Mamba-2: (B, H, headdim, d_state)), mapped to and
/// from their own state type.
macro_rules! mamba_stateful {
    ($layer:ident, $state:ident) => {
        impl Stateful for $layer {
            fn forward_state(&self, x: &Var, state: Option<&State>) -> Result<(Var, State)> {
                let op = concat!(stringify!($layer), "::forward_state");
                let (b, t) = batch_of(op, x)?;
                let s = or_zero(op, self, x, state, b)?;
                let own = $state {
                    conv: s.get(op, "conv")?.clone(),
                    ssm: s.get(op, "ssm")?.clone(),
                };
                let (y, n) = self.forward_with_state(x, Some(&own))?;
                Ok((y, conv_ssm(&s, n.conv, n.ssm)?.advanced(t)))
            }

            fn step(&self, x: &Var, state: Option<&State>) -> Result<(Var, State)> {
                let op = concat!(stringify!($layer), "::step");
                let s = step_state(op, self, x, state)?;
                let own = $state {
                    conv: s.get(op, "conv")?.clone(),
                    ssm: s.get(op, "ssm")?.clone(),
                };
                let (y, n) = $layer::step(self, x, Some(&own))?;
                Ok((y, conv_ssm(&s, n.conv, n.ssm)?.advanced(1)))
            }

            fn zero_state(&self, device: &Device, batch: usize) -> Result<State> {
                let z = $layer::zero_state(self, device, batch)?;
                conv_ssm(&State::new(batch), z.conv, z.ssm)
            }
        }
    };
}

/// A state at `like`'s step counts holding `conv` and `ssm`.
fn conv_ssm(like: &State, conv: Var, ssm: Var) -> Result<State> {
    State::at_steps(like.steps().to_vec())
        .with("conv", conv, 0)?
        .with("ssm", ssm, 0)
}

mamba_stateful!(Mamba, MambaState);
mamba_stateful!(Mamba2, Mamba2State);

/// A Mamba or Mamba-2 residual block: its mixer's state.
impl<M: Mixer + Stateful> Stateful for MambaBlock<M> {
    fn forward_state(&self, x: &Var, state: Option<&State>) -> Result<(Var, State)> {
        residual(&self.norm, x, |h| self.mixer.forward_state(h, state))
    }

    fn step(&self, x: &Var, state: Option<&State>) -> Result<(Var, State)> {
        residual(&self.norm, x, |h| self.mixer.step(h, state))
    }

    fn zero_state(&self, device: &Device, batch: usize) -> Result<State> {
        self.mixer.zero_state(device, batch)
    }
}

/// The attention layers' matrix state `s` (B, H, d_k, d_v); their
/// position is the state's step count.
macro_rules! attention_stateful {
    ($layer:ty, $name:literal, $shape:expr) => {
        impl Stateful for $layer {
            fn forward_state(&self, x: &Var, state: Option<&State>) -> Result<(Var, State)> {
                let op = concat!($name, "::forward_state");
                let (b, t) = batch_of(op, x)?;
                let s = or_zero(op, self, x, state, b)?;
                let (y, last) = self.forward_at(x, s.get(op, "s")?, s.steps())?;
                let next = State::at_steps(s.steps().to_vec()).with("s", last, 0)?;
                Ok((y, next.advanced(t)))
            }

            fn zero_state(&self, device: &Device, batch: usize) -> Result<State> {
                let shape: fn(&Self, usize) -> [usize; 4] = $shape;
                State::new(batch).with("s", zeros(device, &shape(self, batch))?, 0)
            }
        }
    };
}

attention_stateful!(LinearAttention, "LinearAttention", |l, b| {
    let c = l.config();
    let d = c.d_model / c.heads;
    [b, c.heads, d, d + 1]
});
attention_stateful!(Retention, "Retention", |l, b| {
    let c = l.config();
    let dk = c.d_model / c.heads;
    [b, c.heads, dk, c.expand_v * dk]
});
attention_stateful!(GatedLinearAttention, "GatedLinearAttention", |l, b| {
    let c = l.config();
    [
        b,
        c.heads,
        c.d_model / c.key_divisor / c.heads,
        c.d_model / c.heads,
    ]
});

/// `forward_with_state` from a matrix state and per-stream positions: only
/// RetNet's rotary embedding reads them.
pub(crate) trait AttentionAt {
    fn forward_at(&self, x: &Var, s: &Var, steps: &[usize]) -> Result<(Var, Var)>;
}

impl AttentionAt for LinearAttention {
    fn forward_at(&self, x: &Var, s: &Var, _steps: &[usize]) -> Result<(Var, Var)> {
        let st = AttentionState {
            s: s.clone(),
            pos: 0,
        };
        let (y, n) = self.forward_with_state(x, Some(&st))?;
        Ok((y, n.s))
    }
}

impl AttentionAt for GatedLinearAttention {
    fn forward_at(&self, x: &Var, s: &Var, _steps: &[usize]) -> Result<(Var, Var)> {
        let st = AttentionState {
            s: s.clone(),
            pos: 0,
        };
        let (y, n) = self.forward_with_state(x, Some(&st))?;
        Ok((y, n.s))
    }
}

impl AttentionAt for Retention {
    fn forward_at(&self, x: &Var, s: &Var, steps: &[usize]) -> Result<(Var, Var)> {
        self.forward_positions(x, Some(s), steps)
    }
}
