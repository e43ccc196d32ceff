//! The [`Module`] trait (named parameters, training mode), [`Layer`] for
//! modules with one input and one output, and [`Sequential`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use recur_gpu::{Device, Result, Tensor};

use crate::autograd::Var;
use crate::checkpoint::Checkpoint;

/// Something with parameters, like `torch.nn.Module`.
pub trait Module {
    /// Parameters with the names PyTorch's `state_dict` gives them
    /// (`weight`, `0.bias`, `rnn.weight_ih_l0`, ...), in a stable order.
    fn named_parameters(&self) -> Vec<(String, Var)>;

    /// Switches training behaviour (dropout) on or off (`module.train()` /
    /// `module.eval()`); modules start in training mode.
    fn set_training(&self, _training: bool) {}

    /// The parameters, in [`Module::named_parameters`] order.
    fn parameters(&self) -> Vec<Var> {
        self.named_parameters()
            .into_iter()
            .map(|(_, v)| v)
            .collect()
    }

    /// Scalar count of all parameters.
    fn num_parameters(&self) -> usize {
        self.parameters().iter().map(|p| p.value().numel()).sum()
    }

    /// Forgets every accumulated gradient (`module.zero_grad()`).
    fn zero_grad(&self) {
        self.parameters().iter().for_each(Var::zero_grad);
    }

    /// Copies `prefix + name` from a checkpoint into every parameter, in
    /// place (optimizers keep working on them). Missing names or other
    /// shapes are errors and leave the remaining parameters untouched only
    /// if they come first: check with a fresh model when that matters.
    fn load_parameters(&self, device: &Device, ck: &Checkpoint, prefix: &str) -> Result<()> {
        let loaded = self
            .named_parameters()
            .into_iter()
            .map(|(n, p)| Ok((ck.tensor(device, &format!("{prefix}{n}"), p.shape())?, p)))
            .collect::<Result<Vec<(Tensor, Var)>>>()?;
        loaded.iter().try_for_each(|(t, p)| p.assign(t))
    }
}

/// A module applied to one tensor (`forward(x)`), stackable in [`Sequential`].
pub trait Layer: Module {
    /// Applies the layer.
    fn forward(&self, x: &Var) -> Result<Var>;
}

/// `prefix.name` for every parameter of `m`.
pub fn prefixed(prefix: &str, m: &dyn Module) -> Vec<(String, Var)> {
    m.named_parameters()
        .into_iter()
        .map(|(n, v)| (format!("{prefix}.{n}"), v))
        .collect()
}

/// Layers applied in order (`torch.nn.Sequential`); parameters are named
/// `0.weight`, `1.bias`, ... as in PyTorch.
#[derive(Default)]
pub struct Sequential {
    layers: Vec<Box<dyn Layer>>,
}

impl Sequential {
    /// An empty stack (the identity).
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a layer.
    pub fn push(mut self, layer: impl Layer + 'static) -> Self {
        self.layers.push(Box::new(layer));
        self
    }

    /// Number of layers.
    pub fn len(&self) -> usize {
        self.layers.len()
    }

    /// Whether there are no layers.
    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }
}

impl Module for Sequential {
    fn named_parameters(&self) -> Vec<(String, Var)> {
        self.layers
            .iter()
            .enumerate()
            .flat_map(|(i, l)| prefixed(&i.to_string(), l.as_ref()))
            .collect()
    }

    fn set_training(&self, training: bool) {
        self.layers.iter().for_each(|l| l.set_training(training));
    }
}

impl Layer for Sequential {
    fn forward(&self, x: &Var) -> Result<Var> {
        self.layers.iter().try_fold(x.clone(), |x, l| l.forward(&x))
    }
}

/// A shared training-mode flag (clones of a module share it).
#[derive(Clone, Debug)]
pub(crate) struct TrainingFlag(Arc<AtomicBool>);

impl Default for TrainingFlag {
    fn default() -> Self {
        Self(Arc::new(AtomicBool::new(true)))
    }
}

impl TrainingFlag {
    pub(crate) fn get(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    pub(crate) fn set(&self, v: bool) {
        self.0.store(v, Ordering::Relaxed)
    }
}
