//! The recurrent form: the recurrence itself, one step after another, with
//! the state updated in place (streaming).

use super::{dims, ChunkedAttention, LaInputs};
use crate::bindings::linear_attention as la;
use crate::error::{check_shape, Result};
use crate::ops::{device_of, elementwise};
use crate::tensor::{DType, Tensor};

impl ChunkedAttention {
    /// The recurrent form: runs the T steps one after another from `state`
    /// (B, H, d_k, d_v), which it updates in place, and returns the outputs.
    /// `x.h0` is ignored (the state is the start). One dispatch.
    pub fn recurrent(&self, x: &LaInputs, state: &Tensor) -> Result<Tensor> {
        let op = "linear_attention_recurrent";
        let s = dims(op, x, self.layout)?;
        let dev = device_of(op, &[x.q, x.k, x.v, state])?;
        check_shape(op, &[s.batch, s.heads, s.dk, s.dv], state.shape())?;
        let p = self.params(op, &dev, &s, &x.decay, 0)?;
        let out = dev.alloc(op, x.v.shape(), DType::F32)?;
        let g = x.decay.tensor().unwrap_or(x.q);
        let bind = la::LaRecurrent {
            lg: g.into(),
            gc: x.q.into(),
            q: x.q.into(),
            k: x.k.into(),
            v: x.v.into(),
            g: g.into(),
            state: state.into(),
            out: (&out).into(),
        };
        let groups = [s.dv.div_ceil(64) as u32, (s.batch * s.heads) as u32, 1];
        dev.launch(
            &self.key::<la::LaRecurrent>(x.decay.kind(), false),
            &p,
            &bind,
            groups,
        )?;
        Ok(out)
    }

    /// The recurrent form from `x.h0` (zeros when absent): (outputs, final
    /// state).
    pub fn recurrent_from_start(&self, x: &LaInputs) -> Result<(Tensor, Tensor)> {
        let op = "linear_attention_recurrent";
        let s = dims(op, x, self.layout)?;
        let dev = device_of(op, &[x.q])?;
        let state = match x.h0 {
            Some(h) => elementwise::scale(h, 1.0)?,
            None => Tensor::zeros(&dev, &[s.batch, s.heads, s.dk, s.dv])?,
        };
        let out = self.recurrent(x, &state)?;
        Ok((out, state))
    }
}
