//! Reverse-mode automatic differentiation over recur-gpu ops.
//!
//! A [`Var`] is a tensor plus, when it was computed from tensors that
//! require gradients, the op that made it. The ops in
//! [`crate::functional`] (and the layers built on them) record one node per
//! op during the forward pass, so a whole fused LSTM sequence is one node
//! with one GPU backward. [`Var::backward`] walks the nodes in reverse
//! creation order and accumulates gradients on the GPU into the leaves that
//! require them (the parameters), where [`Var::grad`] reads them, as in
//! PyTorch. Nothing is read back.
//!
//! ```no_run
//! # fn main() -> recur_nn::Result<()> {
//! use recur_nn::{functional as F, Device, Tensor, Var};
//! let dev = Device::new()?;
//! let w = Var::param(Tensor::from_slice(&dev, &[1.0, 2.0, 3.0, 4.0], &[2, 2])?);
//! let x = Var::new(Tensor::from_slice(&dev, &[1.0, -1.0], &[1, 2])?);
//! let loss = F::mean_all(&F::linear(&x, &w, None)?)?;
//! loss.backward()?;
//! let dw = w.grad().expect("w requires grad").to_vec()?; // [[0.5, -0.5], [0.5, -0.5]]
//! # Ok(()) }
//! ```
//!
//! Inside [`no_grad`] no nodes are recorded (inference); [`Var::detach`]
//! cuts one tensor from its history (truncated BPTT carries states this way).

use std::cell::Cell;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use recur_gpu::ops::{elementwise, layout};
use recur_gpu::{Error, Result, Tensor};

thread_local! {
    static GRAD_ENABLED: Cell<bool> = const { Cell::new(true) };
}

/// Creation order of vars and nodes: a node only reads vars created before
/// it, so visiting nodes by decreasing id is a reverse topological order.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn next_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

/// Whether ops on this thread record the graph (true unless inside [`no_grad`]).
pub fn is_grad_enabled() -> bool {
    GRAD_ENABLED.with(Cell::get)
}

/// Turns graph recording off on this thread until the guard drops, like
/// `with torch.no_grad():`. Guards nest.
#[must_use = "recording resumes when the guard is dropped"]
pub fn no_grad() -> NoGradGuard {
    NoGradGuard {
        prev: GRAD_ENABLED.with(|g| g.replace(false)),
        _not_send: std::marker::PhantomData,
    }
}

/// See [`no_grad`].
pub struct NoGradGuard {
    prev: bool,
    // The flag is per thread: the guard must drop on the thread that made it.
    _not_send: std::marker::PhantomData<*const ()>,
}

impl Drop for NoGradGuard {
    fn drop(&mut self) {
        GRAD_ENABLED.with(|g| g.set(self.prev));
    }
}

/// Gradients of an op's inputs from the gradients of its outputs (`None`:
/// that output got no gradient, i.e. zero), given which inputs need one.
pub(crate) type BackwardFn =
    dyn Fn(&[Option<Tensor>], &[bool]) -> Result<Vec<Option<Tensor>>> + Send + Sync;

struct Node {
    id: u64,
    op: &'static str,
    inputs: Vec<Var>,
    outputs: Vec<u64>,
    backward: Box<BackwardFn>,
}

struct Inner {
    id: u64,
    value: Tensor,
    requires_grad: bool,
    creator: Option<Arc<Node>>,
    /// Accumulated gradient (leaves only).
    grad: Mutex<Option<Tensor>>,
}

/// A tensor in the autograd graph. Clones share the value, the gradient
/// slot and the history.
#[derive(Clone)]
pub struct Var(Arc<Inner>);

impl std::fmt::Debug for Var {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Var({:?}{}{})",
            self.0.value.shape(),
            if self.0.requires_grad {
                ", requires_grad"
            } else {
                ""
            },
            match &self.0.creator {
                Some(n) => format!(", from {}", n.op),
                None => String::new(),
            }
        )
    }
}

impl From<Tensor> for Var {
    fn from(t: Tensor) -> Self {
        Var::new(t)
    }
}

impl Var {
    fn leaf(value: Tensor, requires_grad: bool) -> Self {
        Var(Arc::new(Inner {
            id: next_id(),
            value,
            requires_grad,
            creator: None,
            grad: Mutex::new(None),
        }))
    }

    /// A constant: no gradient flows into it.
    pub fn new(value: Tensor) -> Self {
        Self::leaf(value, false)
    }

    /// A leaf that accumulates its gradient (a parameter).
    pub fn param(value: Tensor) -> Self {
        Self::leaf(value, true)
    }

    /// The value.
    pub fn value(&self) -> &Tensor {
        &self.0.value
    }

    /// The value's shape.
    pub fn shape(&self) -> &[usize] {
        self.0.value.shape()
    }

    /// Whether gradients flow into this var.
    pub fn requires_grad(&self) -> bool {
        self.0.requires_grad
    }

    /// Whether this var was created by the user rather than by an op.
    pub fn is_leaf(&self) -> bool {
        self.0.creator.is_none()
    }

    /// The same value, cut from the graph (`tensor.detach()`).
    pub fn detach(&self) -> Var {
        Var::new(self.0.value.clone())
    }

    /// The gradient accumulated by [`Var::backward`] calls (leaves only).
    pub fn grad(&self) -> Option<Tensor> {
        self.lock_grad().clone()
    }

    /// Forgets the accumulated gradient (`param.grad = None`).
    pub fn zero_grad(&self) {
        *self.lock_grad() = None;
    }

    fn lock_grad(&self) -> std::sync::MutexGuard<'_, Option<Tensor>> {
        // A poisoned lock only means another thread panicked mid-update;
        // the slot holds a whole tensor or none either way.
        self.0.grad.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn accumulate(&self, g: Tensor) -> Result<()> {
        let mut slot = self.lock_grad();
        *slot = Some(match slot.take() {
            Some(prev) => elementwise::add(&prev, &g)?,
            None => g,
        });
        Ok(())
    }

    /// Overwrites the value in place with `src` (same shape), keeping this
    /// var's identity, so optimizers holding it see the new values.
    pub fn assign(&self, src: &Tensor) -> Result<()> {
        if src.shape() != self.shape() {
            return Err(Error::ShapeMismatch {
                op: "Var::assign",
                expected: format!("{:?}", self.shape()),
                got: src.shape().to_vec(),
            });
        }
        if src.numel() == 0 {
            return Ok(());
        }
        if self.shape().is_empty() {
            return layout::write_slice(&self.value().reshape(&[1])?, 0, 0, &src.reshape(&[1])?);
        }
        layout::write_slice(self.value(), 0, 0, src)
    }

    /// Reads the value back (one readback; blocking, native only).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn to_vec(&self) -> Result<Vec<f32>> {
        self.0.value.to_vec()
    }

    /// Reads a one-element value back (one readback; blocking, native only).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn item(&self) -> Result<f32> {
        self.0.value.item()
    }

    /// Reads the value back (one readback).
    pub async fn to_vec_async(&self) -> Result<Vec<f32>> {
        self.0.value.to_vec_async().await
    }

    /// Reads a one-element value back (one readback).
    pub async fn item_async(&self) -> Result<f32> {
        self.0.value.item_async().await
    }

    /// Backpropagates from this one-element var (the loss), accumulating
    /// d self / d leaf into every leaf that requires a gradient.
    pub fn backward(&self) -> Result<()> {
        if self.value().numel() != 1 {
            return Err(Error::ShapeMismatch {
                op: "Var::backward",
                expected: "a one-element loss (use backward_with for others)".into(),
                got: self.shape().to_vec(),
            });
        }
        let dev = self.value().device("Var::backward")?;
        self.backward_with(Tensor::full(&dev, self.shape(), 1.0)?)
    }

    /// Backpropagates `grad` (shaped like this var) through the graph.
    pub fn backward_with(&self, grad: Tensor) -> Result<()> {
        let op = "Var::backward";
        if !self.requires_grad() {
            return Err(Error::InvalidArgument {
                op,
                what: "this var does not require grad (it depends on no parameter, or was \
                       computed under no_grad)"
                    .into(),
            });
        }
        if grad.shape() != self.shape() {
            return Err(Error::ShapeMismatch {
                op,
                expected: format!("a gradient shaped like the var, {:?}", self.shape()),
                got: grad.shape().to_vec(),
            });
        }
        let Some(root) = &self.0.creator else {
            return self.accumulate(grad);
        };
        // Every node this var depends on, by id.
        let mut nodes: BTreeMap<u64, Arc<Node>> = BTreeMap::new();
        let mut stack = vec![root.clone()];
        while let Some(n) = stack.pop() {
            if nodes.contains_key(&n.id) {
                continue;
            }
            for i in &n.inputs {
                if let Some(c) = &i.0.creator {
                    if !nodes.contains_key(&c.id) {
                        stack.push(c.clone());
                    }
                }
            }
            nodes.insert(n.id, n);
        }
        let mut grads: HashMap<u64, Tensor> = HashMap::from([(self.0.id, grad)]);
        for node in nodes.values().rev() {
            let outs: Vec<Option<Tensor>> =
                node.outputs.iter().map(|id| grads.remove(id)).collect();
            if outs.iter().all(Option::is_none) {
                continue;
            }
            let needs: Vec<bool> = node.inputs.iter().map(Var::requires_grad).collect();
            let in_grads = (node.backward)(&outs, &needs)?;
            if in_grads.len() != node.inputs.len() {
                return Err(Error::InvalidArgument {
                    op,
                    what: format!(
                        "{} returned {} gradients for {} inputs",
                        node.op,
                        in_grads.len(),
                        node.inputs.len()
                    ),
                });
            }
            for (input, g) in node.inputs.iter().zip(in_grads) {
                let Some(g) = g else { continue };
                if !input.requires_grad() {
                    continue;
                }
                if g.shape() != input.shape() {
                    return Err(Error::ShapeMismatch {
                        op: node.op,
                        expected: format!("an input gradient of shape {:?}", input.shape()),
                        got: g.shape().to_vec(),
                    });
                }
                if input.is_leaf() {
                    input.accumulate(g)?;
                } else {
                    let id = input.0.id;
                    let g = match grads.remove(&id) {
                        Some(prev) => elementwise::add(&prev, &g)?,
                        None => g,
                    };
                    grads.insert(id, g);
                }
            }
        }
        Ok(())
    }
}

/// Records an op with `outputs` computed from `inputs`: when recording is
/// on and some input requires a gradient, the outputs get a node whose
/// `backward` maps output gradients to input gradients; otherwise they are
/// constants and `backward` is dropped.
pub(crate) fn record(
    op: &'static str,
    inputs: &[&Var],
    outputs: Vec<Tensor>,
    backward: impl Fn(&[Option<Tensor>], &[bool]) -> Result<Vec<Option<Tensor>>> + Send + Sync + 'static,
) -> Vec<Var> {
    if !is_grad_enabled() || !inputs.iter().any(|v| v.requires_grad()) {
        return outputs.into_iter().map(Var::new).collect();
    }
    let ids: Vec<u64> = outputs.iter().map(|_| next_id()).collect();
    let node = Arc::new(Node {
        id: next_id(),
        op,
        inputs: inputs.iter().map(|v| (*v).clone()).collect(),
        outputs: ids.clone(),
        backward: Box::new(backward),
    });
    outputs
        .into_iter()
        .zip(ids)
        .map(|(value, id)| {
            Var(Arc::new(Inner {
                id,
                value,
                requires_grad: true,
                creator: Some(node.clone()),
                grad: Mutex::new(None),
            }))
        })
        .collect()
}

/// [`record`] for an op with one output.
pub(crate) fn record1(
    op: &'static str,
    inputs: &[&Var],
    output: Tensor,
    backward: impl Fn(&Tensor, &[bool]) -> Result<Vec<Option<Tensor>>> + Send + Sync + 'static,
) -> Var {
    let n = inputs.len();
    record(op, inputs, vec![output], move |g, needs| match &g[0] {
        Some(g) => backward(g, needs),
        None => Ok(vec![None; n]),
    })
    .remove(0)
}
