//! Linear attention with a decay (linear attention, RetNet, GLA, Mamba-2's
//! SSD) as one autograd node over the chunked engine.

use recur_gpu::ops::linear_attention::{ChunkedAttention, Decay, LaInputs};
use recur_gpu::{Error, Result, Tensor};

use crate::autograd::{record, Var};

/// The decay of [`linear_attention`], as log α.
#[derive(Clone, Copy, Debug)]
pub enum VarDecay<'a> {
    /// α = 1.
    None,
    /// (H): fixed per head (RetNet's log γ_h), no gradient.
    Head(&'a Tensor),
    /// (B, H, T) (or (B, T, H)): per head and step (Mamba-2).
    Scalar(&'a Var),
    /// Like q: per key index (GLA).
    Vector(&'a Var),
}

/// The inputs of [`linear_attention`] (shapes as
/// [`recur_gpu::ops::linear_attention::LaInputs`], in the engine's layout).
#[derive(Clone, Copy, Debug)]
pub struct LinearAttentionVars<'a> {
    /// (B, H, T, d_k) or (B, T, H, d_k)
    pub q: &'a Var,
    /// Like q.
    pub k: &'a Var,
    /// (B, H, T, d_v) or (B, T, H, d_v)
    pub v: &'a Var,
    /// The decay.
    pub decay: VarDecay<'a>,
    /// (B, H, d_k, d_v)
    pub h0: Option<&'a Var>,
}

/// `S_t = diag(α_t) S_{t−1} + k_t v_tᵀ, o_t = S_tᵀ q_t` as one node:
/// returns the outputs (like v) and the final state (B, H, d_k, d_v).
pub fn linear_attention(x: &LinearAttentionVars, la: ChunkedAttention) -> Result<(Var, Var)> {
    let op = "linear_attention";
    let vector = matches!(x.decay, VarDecay::Vector(_));
    let saved = Saved {
        q: x.q.value().clone(),
        k: x.k.value().clone(),
        v: x.v.value().clone(),
        head: match x.decay {
            VarDecay::Head(t) => Some(t.clone()),
            _ => None,
        },
        g: match x.decay {
            VarDecay::Scalar(g) | VarDecay::Vector(g) => Some(g.value().clone()),
            _ => None,
        },
        vector,
        h0: x.h0.map(|h| h.value().clone()),
    };
    let fwd = la.forward(&saved.inputs())?;
    let mut inputs = vec![x.q, x.k, x.v];
    if let VarDecay::Scalar(g) | VarDecay::Vector(g) = x.decay {
        inputs.push(g);
    }
    inputs.extend(x.h0);
    let outputs = vec![fwd.out.clone(), fwd.last_state.clone()];
    let out_shape = fwd.out.shape().to_vec();
    let mut vars = record(op, &inputs, outputs, move |grads, _| {
        let dout = match &grads[0] {
            Some(d) => d.clone(),
            None => Tensor::zeros(&saved.q.device("linear_attention backward")?, &out_shape)?,
        };
        let r = la.backward(&saved.inputs(), &fwd, &dout, grads[1].as_ref())?;
        let mut g = vec![Some(r.dq), Some(r.dk), Some(r.dv)];
        if saved.g.is_some() {
            g.push(r.ddecay);
        }
        if saved.h0.is_some() {
            g.push(r.dh0);
        }
        Ok(g)
    });
    let last = vars.pop();
    match (vars.pop(), last) {
        (Some(out), Some(last)) => Ok((out, last)),
        _ => Err(Error::InvalidArgument {
            op,
            what: "missing outputs".into(),
        }),
    }
}

/// The values a linear-attention node keeps for its backward.
struct Saved {
    q: Tensor,
    k: Tensor,
    v: Tensor,
    head: Option<Tensor>,
    g: Option<Tensor>,
    vector: bool,
    h0: Option<Tensor>,
}

impl Saved {
    fn inputs(&self) -> LaInputs<'_> {
        LaInputs {
            q: &self.q,
            k: &self.k,
            v: &self.v,
            decay: match (&self.head, &self.g) {
                (Some(t), _) => Decay::Head(t),
                (None, Some(g)) if self.vector => Decay::Vector(g),
                (None, Some(g)) => Decay::Scalar(g),
                (None, None) => Decay::None,
            },
            h0: self.h0.as_ref(),
        }
    }
}
