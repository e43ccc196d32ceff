//! `Linear`: y = x Wᵀ + b, as `torch.nn.Linear`.

use recur_gpu::ops::gemm;
use recur_gpu::{Device, Error, Result, Rng, Tensor};

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
        Ok(Linear { weight, bias })
    }
}

/// A fully connected layer with PyTorch's parameter names and shapes:
/// `weight` (out, in) and `bias` (out).
#[derive(Clone, Debug)]
pub struct Linear {
    /// (output_size, input_size)
    pub weight: Tensor,
    /// (output_size)
    pub bias: Option<Tensor>,
}

impl Linear {
    /// Applies the layer to `x` of shape (.., input_size).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (out, inp) = (self.weight.shape()[0], self.weight.shape()[1]);
        let shape = x.shape();
        match shape.last() {
            Some(&last) if last == inp => {}
            _ => {
                return Err(Error::ShapeMismatch {
                    op: "Linear::forward",
                    expected: format!("(.., {inp})"),
                    got: shape.to_vec(),
                })
            }
        }
        let rows = shape[..shape.len() - 1].iter().product();
        let y = gemm::linear(&x.reshape(&[rows, inp])?, &self.weight, self.bias.as_ref())?;
        let mut out_shape = shape.to_vec();
        *out_shape.last_mut().expect("rank >= 1 checked above") = out;
        y.reshape(&out_shape)
    }

    /// Named parameters as PyTorch names them.
    pub fn named_parameters(&self) -> Vec<(&'static str, &Tensor)> {
        let mut v = vec![("weight", &self.weight)];
        v.extend(self.bias.as_ref().map(|b| ("bias", b)));
        v
    }
}
