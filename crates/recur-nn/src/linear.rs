//! `Linear`: y = x Wᵀ + b, as `torch.nn.Linear`.

use recur_gpu::{Device, Error, Result, Rng, Tensor};

use crate::autograd::Var;
use crate::functional as F;
use crate::module::{Layer, Module};

/// Configuration of a [`Linear`] layer, mirroring `torch.nn.Linear`.
#[derive(Clone, Copy, Debug)]
pub struct LinearConfig {
    /// Input features (`in_features`).
    pub input_size: usize,
    /// Output features (`out_features`).
    pub output_size: usize,
    /// Whether the layer has a bias (`bias=True` in PyTorch).
    pub bias: bool,
}

impl LinearConfig {
    /// A config with a bias.
    pub fn new(input_size: usize, output_size: usize) -> Self {
        Self {
            input_size,
            output_size,
            bias: true,
        }
    }

    /// Builds the layer with PyTorch's default initialisation: weight and
    /// bias uniform in ±1/√in_features (what `kaiming_uniform_(a=√5)` gives).
    pub fn init(&self, device: &Device, rng: &mut Rng) -> Result<Linear> {
        if self.input_size == 0 || self.output_size == 0 {
            return Err(Error::InvalidArgument {
                op: "Linear::init",
                what: format!("sizes must be positive, got {self:?}"),
            });
        }
        let bound = 1.0 / (self.input_size as f32).sqrt();
        let weight = Tensor::rand(
            device,
            &[self.output_size, self.input_size],
            -bound,
            bound,
            rng,
        )?;
        let bias = if self.bias {
            Some(Tensor::rand(
                device,
                &[self.output_size],
                -bound,
                bound,
                rng,
            )?)
        } else {
            None
        };
        Ok(Linear {
            weight: Var::param(weight),
            bias: bias.map(Var::param),
        })
    }
}

/// A fully connected layer with PyTorch's parameter names and shapes:
/// `weight` (out, in) and `bias` (out).
#[derive(Clone, Debug)]
pub struct Linear {
    /// (output_size, input_size)
    pub weight: Var,
    /// (output_size)
    pub bias: Option<Var>,
}

impl Module for Linear {
    fn named_parameters(&self) -> Vec<(String, Var)> {
        let mut v = vec![("weight".to_string(), self.weight.clone())];
        v.extend(self.bias.clone().map(|b| ("bias".to_string(), b)));
        v
    }
}

impl Layer for Linear {
    /// Applies the layer to `x` of shape (.., input_size).
    fn forward(&self, x: &Var) -> Result<Var> {
        F::linear(x, &self.weight, self.bias.as_ref())
    }
}
