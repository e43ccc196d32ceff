//! Composites of [`Stateful`] layers: a pre-norm residual block around any
//! of them ([`PreNorm`]) and a stack ([`Stack`]), itself stateful.

use recur_gpu::{Device, Result};

use super::{State, Stateful};
use crate::autograd::Var;
use crate::functional as F;
use crate::layers::RmsNorm;
use crate::module::{prefixed, Layer, Module};

/// `x + mixer(RMSNorm(x))` around any stateful layer (parameters `norm.*`,
/// `mixer.*`, as mamba_ssm's and flash-linear-attention's blocks).
pub struct PreNorm {
    /// Before the mixer.
    pub norm: RmsNorm,
    /// The sequence mixer.
    pub mixer: Box<dyn Stateful + Send + Sync>,
}

impl Module for PreNorm {
    fn named_parameters(&self) -> Vec<(String, Var)> {
        let mut v = prefixed("norm", &self.norm);
        v.extend(prefixed("mixer", &*self.mixer));
        v
    }

    fn set_training(&self, training: bool) {
        self.mixer.set_training(training);
    }
}

/// `x + f(norm(x))` and `f`'s state: a pre-norm residual block's step or
/// sequence (shared with `MambaBlock`).
pub(crate) fn residual(
    norm: &RmsNorm,
    x: &Var,
    f: impl FnOnce(&Var) -> Result<(Var, State)>,
) -> Result<(Var, State)> {
    let (y, s) = f(&norm.forward(x)?)?;
    Ok((F::add(x, &y)?, s))
}

impl Stateful for PreNorm {
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

/// Layers applied in order, each from its part of the state (`0.h`,
/// `1.conv`, ...); parameters `0.*`, `1.*`, ... as `nn.Sequential`.
#[derive(Default)]
pub struct Stack {
    /// The layers.
    pub layers: Vec<Box<dyn Stateful + Send + Sync>>,
}

impl Module for Stack {
    fn named_parameters(&self) -> Vec<(String, Var)> {
        self.layers
            .iter()
            .enumerate()
            .flat_map(|(i, l)| prefixed(&i.to_string(), &**l))
            .collect()
    }

    fn set_training(&self, training: bool) {
        self.layers.iter().for_each(|l| l.set_training(training));
    }
}

impl Stack {
    fn run(
        &self,
        x: &Var,
        state: Option<&State>,
        f: impl Fn(&dyn Stateful, &Var, Option<&State>) -> Result<(Var, State)>,
    ) -> Result<(Var, State)> {
        let mut x = x.clone();
        let mut parts = Vec::with_capacity(self.layers.len());
        for (i, l) in self.layers.iter().enumerate() {
            let own = state.map(|s| s.part(&i.to_string()));
            let (y, s) = f(l.as_ref(), &x, own.as_ref())?;
            x = y;
            parts.push(s);
        }
        let batch = x.shape()[0];
        Ok((x, State::join(parts, batch)?))
    }
}

impl Stateful for Stack {
    fn forward_state(&self, x: &Var, state: Option<&State>) -> Result<(Var, State)> {
        self.run(x, state, |l, x, s| l.forward_state(x, s))
    }

    fn step(&self, x: &Var, state: Option<&State>) -> Result<(Var, State)> {
        self.run(x, state, |l, x, s| l.step(x, s))
    }

    fn zero_state(&self, device: &Device, batch: usize) -> Result<State> {
        let parts = self
            .layers
            .iter()
            .map(|l| l.zero_state(device, batch))
            .collect::<Result<Vec<_>>>()?;
        State::join(parts, batch)
    }
}
