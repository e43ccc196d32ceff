//! Differentiable ops on [`Var`]s (`torch.nn.functional`): each records one
//! autograd node whose backward runs on the GPU.

use recur_gpu::ops::elementwise::{self, BinaryOp};
use recur_gpu::ops::gemm::{self, Gemm};
use recur_gpu::ops::norm::{self, Norm};
use recur_gpu::ops::scan::{self as ops_scan, ScanKind, ScanLayout};
use recur_gpu::ops::softmax::{self, LossReduction};
use recur_gpu::ops::{embedding as emb, layout, reduce, Activation};
use recur_gpu::{Error, Result, Rng, Tensor};

use crate::autograd::{record, record1, Var};

mod attention;
mod mamba;

pub use attention::{linear_attention, LinearAttentionVars, VarDecay};
pub use mamba::{causal_conv1d, selective_scan, transpose, SelectiveScanVars};

/// Sums `g` over the leading dimensions it has beyond `shape` (the
/// backward of a broadcast over leading dimensions).
fn sum_to(g: &Tensor, shape: &[usize]) -> Result<Tensor> {
    if g.shape() == shape {
        return Ok(g.clone());
    }
    let n: usize = shape.iter().product();
    reduce::sum(&g.reshape(&[g.numel() / n.max(1), n])?, 0)?.reshape(shape)
}

/// `g` (one element) broadcast into a tensor of `shape`, times `alpha`.
fn expand_scalar(g: &Tensor, shape: &[usize], alpha: f32) -> Result<Tensor> {
    let dev = g.device("expand_scalar")?;
    let zeros = Tensor::zeros(&dev, shape)?;
    elementwise::binary(&zeros, &g.reshape(&[])?, BinaryOp::Add, alpha)
}

/// `x wᵀ + b` over the last axis of `x` (`F.linear`), `w` of shape (out, in).
pub fn linear(x: &Var, w: &Var, b: Option<&Var>) -> Result<Var> {
    let op = "linear";
    let (out, inp) = match *w.shape() {
        [o, i] => (o, i),
        _ => {
            return Err(Error::ShapeMismatch {
                op,
                expected: "weight (out, in)".into(),
                got: w.shape().to_vec(),
            })
        }
    };
    if x.shape().last() != Some(&inp) {
        return Err(Error::ShapeMismatch {
            op,
            expected: format!("input (.., {inp})"),
            got: x.shape().to_vec(),
        });
    }
    let rows = x.value().numel() / inp;
    let x2 = x.value().reshape(&[rows, inp])?;
    let y = gemm::linear(&x2, w.value(), b.map(Var::value))?;
    let mut shape = x.shape().to_vec();
    *shape.last_mut().expect("rank checked") = out;
    let y = y.reshape(&shape)?;
    let (xs, wv) = (x.shape().to_vec(), w.value().clone());
    let mut inputs = vec![x, w];
    inputs.extend(b);
    Ok(record1(op, &inputs, y, move |g, needs| {
        let g2 = g.reshape(&[rows, out])?;
        let dx = if needs[0] {
            Some(gemm::matmul(&g2, &wv)?.reshape(&xs)?)
        } else {
            None
        };
        let dw = if needs[1] {
            Some(
                Gemm {
                    trans_a: true,
                    ..Default::default()
                }
                .run(&g2, &x2, None)?,
            )
        } else {
            None
        };
        let mut v = vec![dx, dw];
        if needs.len() == 3 {
            v.push(if needs[2] {
                Some(reduce::sum(&g2, 0)?)
            } else {
                None
            });
        }
        Ok(v)
    }))
}

/// `a @ b` for 2-D `a` (M, K) and `b` (K, N).
pub fn matmul(a: &Var, b: &Var) -> Result<Var> {
    let y = gemm::matmul(a.value(), b.value())?;
    let (av, bv) = (a.value().clone(), b.value().clone());
    Ok(record1("matmul", &[a, b], y, move |g, needs| {
        let da = if needs[0] {
            Some(
                Gemm {
                    trans_b: true,
                    ..Default::default()
                }
                .run(g, &bv, None)?,
            )
        } else {
            None
        };
        let db = if needs[1] {
            Some(
                Gemm {
                    trans_a: true,
                    ..Default::default()
                }
                .run(&av, g, None)?,
            )
        } else {
            None
        };
        Ok(vec![da, db])
    }))
}

/// Rows of `table` (V, E) at u32 `ids` (any shape): (ids.., E) (`F.embedding`).
pub fn embedding(table: &Var, ids: &Tensor) -> Result<Var> {
    let y = emb::embedding(table.value(), ids)?;
    let (ids, shape) = (ids.clone(), table.shape().to_vec());
    Ok(record1("embedding", &[table], y, move |g, _| {
        let dev = g.device("embedding backward")?;
        let d = Tensor::zeros(&dev, &shape)?;
        emb::embedding_backward_into(&d, &ids, g)?;
        Ok(vec![Some(d)])
    }))
}

fn binary(op: BinaryOp, a: &Var, b: &Var) -> Result<Var> {
    let axis = a.shape().len().saturating_sub(b.shape().len());
    binary_at(op, a, b, axis)
}

/// `g` summed over the axes of `a` outside `axis..axis + shape.len()`.
fn sum_to_at(g: &Tensor, shape: &[usize], axis: usize) -> Result<Tensor> {
    let inner: usize = g.shape()[(axis + shape.len()).min(g.shape().len())..]
        .iter()
        .product();
    if inner == 1 {
        return sum_to(g, shape);
    }
    let rows = g.numel() / inner;
    let g = reduce::sum(&g.reshape(&[rows, inner])?, 1)?;
    sum_to(&g.reshape(&[rows])?, shape)
}

fn binary_at(op: BinaryOp, a: &Var, b: &Var, axis: usize) -> Result<Var> {
    let name = match op {
        BinaryOp::Add => "add",
        BinaryOp::Sub => "sub",
        BinaryOp::Mul => "mul",
        BinaryOp::Div => "div",
    };
    if op == BinaryOp::Div {
        return Err(Error::InvalidArgument {
            op: name,
            what: "division is not differentiable here yet".into(),
        });
    }
    let y = elementwise::binary_at(a.value(), b.value(), op, 1.0, axis)?;
    let (av, bv) = (a.value().clone(), b.value().clone());
    Ok(record1(name, &[a, b], y, move |g, needs| {
        let (da, db) = match op {
            BinaryOp::Mul => (
                needs[0]
                    .then(|| elementwise::binary_at(g, &bv, BinaryOp::Mul, 1.0, axis))
                    .transpose()?,
                needs[1]
                    .then(|| sum_to_at(&elementwise::mul(g, &av)?, bv.shape(), axis))
                    .transpose()?,
            ),
            _ => {
                let sign = if op == BinaryOp::Sub { -1.0 } else { 1.0 };
                (
                    needs[0].then(|| g.clone()),
                    needs[1]
                        .then(|| elementwise::scale(&sum_to_at(g, bv.shape(), axis)?, sign))
                        .transpose()?,
                )
            }
        };
        Ok(vec![da, db])
    }))
}

/// `a + b`; `b` may have a trailing part of `a`'s shape (broadcast).
pub fn add(a: &Var, b: &Var) -> Result<Var> {
    binary(BinaryOp::Add, a, b)
}

/// `a − b`; `b` may have a trailing part of `a`'s shape (broadcast).
pub fn sub(a: &Var, b: &Var) -> Result<Var> {
    binary(BinaryOp::Sub, a, b)
}

/// `a ⊙ b`; `b` may have a trailing part of `a`'s shape (broadcast).
pub fn mul(a: &Var, b: &Var) -> Result<Var> {
    binary(BinaryOp::Mul, a, b)
}

/// `a + b` with b's shape equal to a's axes `axis..axis + b.rank()`,
/// broadcast over the others.
pub fn add_at(a: &Var, b: &Var, axis: usize) -> Result<Var> {
    binary_at(BinaryOp::Add, a, b, axis)
}

/// `a ⊙ b` with b's shape equal to a's axes `axis..axis + b.rank()`,
/// broadcast over the others (per-head values over (B, T, H, P): axis 2).
pub fn mul_at(a: &Var, b: &Var, axis: usize) -> Result<Var> {
    binary_at(BinaryOp::Mul, a, b, axis)
}

/// `alpha · x`.
pub fn scale(x: &Var, alpha: f32) -> Result<Var> {
    let y = elementwise::scale(x.value(), alpha)?;
    Ok(record1("scale", &[x], y, move |g, _| {
        Ok(vec![Some(elementwise::scale(g, alpha)?)])
    }))
}

/// `act(x)` elementwise.
pub fn activation(x: &Var, act: Activation) -> Result<Var> {
    let y = elementwise::activation(x.value(), act)?;
    let xv = x.value().clone();
    Ok(record1("activation", &[x], y, move |g, _| {
        Ok(vec![Some(elementwise::activation_backward(&xv, g, act)?)])
    }))
}

/// `tanh(x)`.
pub fn tanh(x: &Var) -> Result<Var> {
    activation(x, Activation::Tanh)
}

/// `σ(x)`.
pub fn sigmoid(x: &Var) -> Result<Var> {
    activation(x, Activation::Sigmoid)
}

/// `max(x, 0)`.
pub fn relu(x: &Var) -> Result<Var> {
    activation(x, Activation::Relu)
}

/// The same elements in another shape.
pub fn reshape(x: &Var, shape: &[usize]) -> Result<Var> {
    let y = x.value().reshape(shape)?;
    let xs = x.shape().to_vec();
    Ok(record1("reshape", &[x], y, move |g, _| {
        Ok(vec![Some(g.reshape(&xs)?)])
    }))
}

/// Elements `start..start + len` of `axis` (`x.narrow(axis, start, len)`).
pub fn slice(x: &Var, axis: usize, start: usize, len: usize) -> Result<Var> {
    let y = layout::slice(x.value(), axis, start, len)?;
    let xs = x.shape().to_vec();
    Ok(record1("slice", &[x], y, move |g, _| {
        let d = Tensor::zeros(&g.device("slice backward")?, &xs)?;
        layout::write_slice(&d, axis, start, g)?;
        Ok(vec![Some(d)])
    }))
}

/// Joins `parts` along `axis` (`torch.cat`).
pub fn concat(parts: &[&Var], axis: usize) -> Result<Var> {
    if parts.is_empty() {
        return Err(Error::InvalidArgument {
            op: "concat",
            what: "no tensors to join".into(),
        });
    }
    let values: Vec<&Tensor> = parts.iter().map(|v| v.value()).collect();
    let y = layout::concat(&values, axis)?;
    let lens: Vec<usize> = parts.iter().map(|v| v.shape()[axis]).collect();
    Ok(record1("concat", parts, y, move |g, needs| {
        let mut start = 0;
        let mut out = Vec::new();
        for (&len, &need) in lens.iter().zip(needs) {
            out.push(if need {
                Some(layout::slice(g, axis, start, len)?)
            } else {
                None
            });
            start += len;
        }
        Ok(out)
    }))
}

/// Swaps the first two axes: (T, B, ..) ↔ (B, T, ..).
pub fn swap01(x: &Var) -> Result<Var> {
    let y = layout::swap01(x.value())?;
    Ok(record1("swap01", &[x], y, |g, _| {
        Ok(vec![Some(layout::swap01(g)?)])
    }))
}

fn reduce_all(x: &Var, mean: bool) -> Result<Var> {
    let n = x.value().numel();
    if n == 0 {
        return Err(Error::ShapeMismatch {
            op: if mean { "mean_all" } else { "sum_all" },
            expected: "a non-empty tensor".into(),
            got: x.shape().to_vec(),
        });
    }
    let flat = x.value().reshape(&[n])?;
    let y = if mean {
        reduce::mean(&flat, 0)?
    } else {
        reduce::sum(&flat, 0)?
    };
    let xs = x.shape().to_vec();
    let alpha = if mean { 1.0 / n as f32 } else { 1.0 };
    Ok(record1("reduce_all", &[x], y, move |g, _| {
        Ok(vec![Some(expand_scalar(g, &xs, alpha)?)])
    }))
}

/// Σ x over every element: a one-element var of shape ().
pub fn sum_all(x: &Var) -> Result<Var> {
    reduce_all(x, false)
}

/// Mean of every element: a one-element var of shape ().
pub fn mean_all(x: &Var) -> Result<Var> {
    reduce_all(x, true)
}

/// Cross-entropy of `logits` (.., C) against u32 class `targets` (..)
/// (`F.cross_entropy`), ignoring targets equal to `ignore_index`; fused
/// softmax + NLL on the GPU. Returns a one-element var of shape ().
pub fn cross_entropy(
    logits: &Var,
    targets: &Tensor,
    ignore_index: Option<u32>,
    reduction: LossReduction,
) -> Result<Var> {
    let ce = softmax::cross_entropy(logits.value(), targets, ignore_index, reduction)?;
    let grad = ce.grad;
    Ok(record1(
        "cross_entropy",
        &[logits],
        ce.loss.reshape(&[])?,
        move |g, _| {
            Ok(vec![Some(elementwise::binary(
                &grad,
                &g.reshape(&[])?,
                BinaryOp::Mul,
                1.0,
            )?)])
        },
    ))
}

/// Mean (or summed) squared error between `pred` and `target` of the same
/// shape (`F.mse_loss`). Returns a one-element var of shape ().
pub fn mse_loss(pred: &Var, target: &Var, reduction: LossReduction) -> Result<Var> {
    let op = "mse_loss";
    if pred.shape() != target.shape() {
        return Err(Error::ShapeMismatch {
            op,
            expected: format!("a target shaped like the prediction, {:?}", pred.shape()),
            got: target.shape().to_vec(),
        });
    }
    let n = pred.value().numel();
    if n == 0 {
        return Err(Error::ShapeMismatch {
            op,
            expected: "non-empty tensors".into(),
            got: pred.shape().to_vec(),
        });
    }
    let d = elementwise::sub(pred.value(), target.value())?;
    let sq = elementwise::activation(&d, Activation::Square)?.reshape(&[n])?;
    let (loss, k) = match reduction {
        LossReduction::Mean => (reduce::mean(&sq, 0)?, 2.0 / n as f32),
        LossReduction::Sum => (reduce::sum(&sq, 0)?, 2.0),
    };
    Ok(record1(op, &[pred, target], loss, move |g, needs| {
        let dp = elementwise::scale(
            &elementwise::binary(&d, &g.reshape(&[])?, BinaryOp::Mul, 1.0)?,
            k,
        )?;
        let dt = needs[1]
            .then(|| elementwise::scale(&dp, -1.0))
            .transpose()?;
        Ok(vec![needs[0].then_some(dp), dt])
    }))
}

fn normalize(
    kind: Norm,
    x: &Var,
    weight: Option<&Var>,
    bias: Option<&Var>,
    eps: f32,
) -> Result<Var> {
    let f = norm::norm(
        kind,
        x.value(),
        weight.map(Var::value),
        bias.map(Var::value),
        eps,
    )?;
    let (xv, wv, stats) = (
        x.value().clone(),
        weight.map(|w| w.value().clone()),
        f.stats,
    );
    let has_bias = bias.is_some();
    let mut inputs = vec![x];
    inputs.extend(weight);
    inputs.extend(bias);
    let op = match kind {
        Norm::Layer => "layer_norm",
        Norm::Rms => "rms_norm",
    };
    Ok(record1(op, &inputs, f.y, move |g, _| {
        let r = norm::norm_backward(kind, &xv, wv.as_ref(), has_bias, &stats, g)?;
        let mut v = vec![Some(r.dx)];
        if r.dgamma.is_some() {
            v.push(r.dgamma);
        }
        if r.dbeta.is_some() {
            v.push(r.dbeta);
        }
        Ok(v)
    }))
}

/// LayerNorm over the last axis (`F.layer_norm` with `normalized_shape` =
/// the last dimension), with optional `weight` and `bias` of that length.
pub fn layer_norm(x: &Var, weight: Option<&Var>, bias: Option<&Var>, eps: f32) -> Result<Var> {
    normalize(Norm::Layer, x, weight, bias, eps)
}

/// RMSNorm over the last axis (`F.rms_norm`), with an optional `weight`.
pub fn rms_norm(x: &Var, weight: Option<&Var>, eps: f32) -> Result<Var> {
    normalize(Norm::Rms, x, weight, None, eps)
}

/// A mask of `shape` holding 0 with probability `p` and 1/(1 − p)
/// otherwise, drawn on the GPU from one 64-bit seed taken from `rng`.
pub(crate) fn dropout_mask(
    device: &recur_gpu::Device,
    shape: &[usize],
    p: f32,
    rng: &mut Rng,
) -> Result<Tensor> {
    elementwise::dropout_mask(device, shape, p, rng.next_u64())
}

/// Inverted dropout (`F.dropout` in training): zeroes each element with
/// probability `p` and scales the rest by 1/(1 − p); the mask is drawn on
/// the GPU from a seed taken from `rng`.
pub fn dropout(x: &Var, p: f32, rng: &mut Rng) -> Result<Var> {
    if !(0.0..1.0).contains(&p) {
        return Err(Error::InvalidArgument {
            op: "dropout",
            what: format!("p must be in [0, 1), got {p}"),
        });
    }
    if p == 0.0 {
        return Ok(x.clone());
    }
    let mask = dropout_mask(&x.value().device("dropout")?, x.shape(), p, rng)?;
    let y = elementwise::mul(x.value(), &mask)?;
    Ok(record1("dropout", &[x], y, move |g, _| {
        Ok(vec![Some(elementwise::mul(g, &mask)?)])
    }))
}

/// Records an op defined outside this crate: `outputs` were computed from
/// `inputs`, and `backward` maps the outputs' gradients (`None`: zero) to
/// the inputs' (`None` where the `bool` says no gradient is needed).
pub fn custom(
    op: &'static str,
    inputs: &[&Var],
    outputs: Vec<Tensor>,
    backward: impl Fn(&[Option<Tensor>], &[bool]) -> Result<Vec<Option<Tensor>>> + Send + Sync + 'static,
) -> Vec<Var> {
    record(op, inputs, outputs, backward)
}

/// The first-order recurrence `h_t = a_t ⊙ h_{t−1} + b_t` over time (or its
/// log-space form on log a, log b, log h), from `h0` (B, D) when given:
/// returns every state (shaped like `a`) and the final state (B, D), one
/// node whose backward is the reverse scan.
pub fn scan(
    kind: ScanKind,
    a: &Var,
    b: &Var,
    h0: Option<&Var>,
    layout: ScanLayout,
) -> Result<(Var, Var)> {
    let plan = ops_scan::Scan {
        layout,
        ..ops_scan::Scan::new(kind)
    };
    let out = plan.forward(a.value(), b.value(), h0.map(Var::value))?;
    let (av, bv, h0v, hv) = (
        a.value().clone(),
        b.value().clone(),
        h0.map(|h| h.value().clone()),
        out.h.clone(),
    );
    let mut inputs = vec![a, b];
    inputs.extend(h0);
    let mut v = record("scan", &inputs, vec![out.h, out.last], move |g, _| {
        let r = plan.backward([&av, &bv, &hv], h0v.as_ref(), g[0].as_ref(), g[1].as_ref())?;
        let mut grads = vec![Some(r.da), Some(r.db)];
        if h0v.is_some() {
            grads.push(r.dh0);
        }
        Ok(grads)
    });
    let last = v.pop();
    match (v.pop(), last) {
        (Some(h), Some(last)) => Ok((h, last)),
        _ => Err(Error::InvalidArgument {
            op: "scan",
            what: "missing outputs".into(),
        }),
    }
}
