//! Differentiable ops for Mamba: the selective scan, the causal depthwise
//! convolution and a transpose of the last two axes, each one autograd node
//! whose backward runs on the GPU.

use recur_gpu::ops::conv1d;
use recur_gpu::ops::layout;
use recur_gpu::ops::selective_scan::{SelectiveScan, SelectiveScanInputs};
use recur_gpu::{Result, Tensor};

use crate::autograd::{record, record1, Var};

/// Swaps the last two axes: (.., R, C) -> (.., C, R).
pub fn transpose(x: &Var) -> Result<Var> {
    let y = layout::transpose(x.value())?;
    Ok(record1("transpose", &[x], y, |g, _| {
        Ok(vec![Some(layout::transpose(g)?)])
    }))
}

/// The inputs of [`selective_scan`], as in
/// [`recur_gpu::ops::selective_scan::SelectiveScanInputs`].
#[derive(Clone, Copy, Debug)]
pub struct SelectiveScanVars<'a> {
    /// Like the layout says: (B, D, L) or (B, L, D).
    pub u: &'a Var,
    /// Like `u`: δ before `delta_bias` and softplus.
    pub delta: &'a Var,
    /// (D, N)
    pub a: &'a Var,
    /// (B, N, L) or (B, G, N, L)
    pub b: &'a Var,
    /// Like `b`.
    pub c: &'a Var,
    /// (D)
    pub d: Option<&'a Var>,
    /// Like `u`.
    pub z: Option<&'a Var>,
    /// (D)
    pub delta_bias: Option<&'a Var>,
    /// (B, D, N)
    pub h0: Option<&'a Var>,
}

/// Mamba's selective scan as one node: returns the output (like `u`) and
/// the final state (B, D, N). The backward replays each time chunk from the
/// states the forward kept.
pub fn selective_scan(x: &SelectiveScanVars, scan: SelectiveScan) -> Result<(Var, Var)> {
    let v = |o: Option<&Var>| o.map(|v| v.value().clone());
    let vals = Saved {
        u: x.u.value().clone(),
        delta: x.delta.value().clone(),
        a: x.a.value().clone(),
        b: x.b.value().clone(),
        c: x.c.value().clone(),
        d: v(x.d),
        z: v(x.z),
        delta_bias: v(x.delta_bias),
        h0: v(x.h0),
    };
    let fwd = scan.forward(&vals.inputs())?;
    let mut inputs = vec![x.u, x.delta, x.a, x.b, x.c];
    inputs.extend(x.d.into_iter().chain(x.z).chain(x.delta_bias).chain(x.h0));
    let outputs = vec![fwd.out.clone(), fwd.last_state.clone()];
    let out_shape = fwd.out.shape().to_vec();
    let mut vars = record("selective_scan", &inputs, outputs, move |g, _| {
        let dout = match &g[0] {
            Some(d) => d.clone(),
            None => Tensor::zeros(&vals.u.device("selective_scan backward")?, &out_shape)?,
        };
        let r = scan.backward(&vals.inputs(), &fwd, &dout, g[1].as_ref())?;
        let mut grads = vec![
            Some(r.du),
            Some(r.ddelta),
            Some(r.da),
            Some(r.db),
            Some(r.dc),
        ];
        for (given, grad) in [
            (vals.d.is_some(), r.dd),
            (vals.z.is_some(), r.dz),
            (vals.delta_bias.is_some(), r.ddelta_bias),
            (vals.h0.is_some(), r.dh0),
        ] {
            if given {
                grads.push(grad);
            }
        }
        Ok(grads)
    });
    let last = vars.pop();
    match (vars.pop(), last) {
        (Some(out), Some(last)) => Ok((out, last)),
        _ => Err(recur_gpu::Error::InvalidArgument {
            op: "selective_scan",
            what: "missing outputs".into(),
        }),
    }
}

/// The input values a selective-scan node keeps for its backward.
struct Saved {
    u: Tensor,
    delta: Tensor,
    a: Tensor,
    b: Tensor,
    c: Tensor,
    d: Option<Tensor>,
    z: Option<Tensor>,
    delta_bias: Option<Tensor>,
    h0: Option<Tensor>,
}

impl Saved {
    fn inputs(&self) -> SelectiveScanInputs<'_> {
        SelectiveScanInputs {
            u: &self.u,
            delta: &self.delta,
            a: &self.a,
            b: &self.b,
            c: &self.c,
            d: self.d.as_ref(),
            z: self.z.as_ref(),
            delta_bias: self.delta_bias.as_ref(),
            h0: self.h0.as_ref(),
        }
    }
}

/// Causal depthwise convolution over time of `x` (B, L, D) with `weight`
/// (D, W), optional `bias` (D) and `state` (B, W−1, D), the inputs before
/// `x` (see [`recur_gpu::ops::conv1d::causal_conv1d`]).
pub fn causal_conv1d(
    x: &Var,
    weight: &Var,
    bias: Option<&Var>,
    state: Option<&Var>,
) -> Result<Var> {
    let y = conv1d::causal_conv1d(
        x.value(),
        weight.value(),
        bias.map(Var::value),
        state.map(Var::value),
    )?;
    let (xv, wv, sv) = (
        x.value().clone(),
        weight.value().clone(),
        state.map(|s| s.value().clone()),
    );
    let has_bias = bias.is_some();
    let mut inputs = vec![x, weight];
    inputs.extend(bias.into_iter().chain(state));
    Ok(record1("causal_conv1d", &inputs, y, move |g, _| {
        let r = conv1d::causal_conv1d_backward(&xv, &wv, has_bias, sv.as_ref(), g)?;
        let mut grads = vec![Some(r.dx), Some(r.dweight)];
        if has_bias {
            grads.push(r.dbias);
        }
        if sv.is_some() {
            grads.push(r.dstate);
        }
        Ok(grads)
    }))
}
