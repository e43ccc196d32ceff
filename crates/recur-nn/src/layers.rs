//! `Embedding`, `LayerNorm`, `RmsNorm` and `Dropout`, as in `torch.nn`.

use std::sync::{Arc, Mutex};

use recur_gpu::{Device, Error, Result, Rng, Tensor};

use crate::autograd::Var;
use crate::functional as F;
use crate::module::{Layer, Module, TrainingFlag};

/// A lookup table (`torch.nn.Embedding`): `weight` (V, E), initialised N(0, 1).
#[derive(Clone, Debug)]
pub struct Embedding {
    /// (num_embeddings, embedding_dim)
    pub weight: Var,
}

impl Embedding {
    /// `torch.nn.Embedding(num_embeddings, embedding_dim)`.
    pub fn new(device: &Device, num: usize, dim: usize, rng: &mut Rng) -> Result<Self> {
        if num == 0 || dim == 0 {
            return Err(Error::InvalidArgument {
                op: "Embedding::new",
                what: format!("sizes must be positive, got ({num}, {dim})"),
            });
        }
        Ok(Self {
            weight: Var::param(Tensor::randn(device, &[num, dim], 0.0, 1.0, rng)?),
        })
    }

    /// Rows for u32 `ids` of any shape: (ids.., E).
    pub fn forward(&self, ids: &Tensor) -> Result<Var> {
        F::embedding(&self.weight, ids)
    }
}

impl Module for Embedding {
    fn named_parameters(&self) -> Vec<(String, Var)> {
        vec![("weight".into(), self.weight.clone())]
    }
}

/// Layer normalisation over the last axis (`torch.nn.LayerNorm(d)`):
/// `weight` ones and `bias` zeros at first, eps 1e-5.
#[derive(Clone, Debug)]
pub struct LayerNorm {
    /// (d), when elementwise-affine.
    pub weight: Option<Var>,
    /// (d), when elementwise-affine with bias.
    pub bias: Option<Var>,
    /// Added to the variance.
    pub eps: f32,
}

impl LayerNorm {
    /// `torch.nn.LayerNorm(d)`.
    pub fn new(device: &Device, d: usize) -> Result<Self> {
        Ok(Self {
            weight: Some(Var::param(Tensor::full(device, &[d], 1.0)?)),
            bias: Some(Var::param(Tensor::zeros(device, &[d])?)),
            eps: 1e-5,
        })
    }

    /// `torch.nn.LayerNorm(d, elementwise_affine=False)`.
    pub fn without_affine(eps: f32) -> Self {
        Self {
            weight: None,
            bias: None,
            eps,
        }
    }
}

impl Module for LayerNorm {
    fn named_parameters(&self) -> Vec<(String, Var)> {
        let mut v = Vec::new();
        v.extend(self.weight.clone().map(|w| ("weight".to_string(), w)));
        v.extend(self.bias.clone().map(|b| ("bias".to_string(), b)));
        v
    }
}

impl Layer for LayerNorm {
    fn forward(&self, x: &Var) -> Result<Var> {
        F::layer_norm(x, self.weight.as_ref(), self.bias.as_ref(), self.eps)
    }
}

/// RMS normalisation over the last axis (`torch.nn.RMSNorm(d, eps)`):
/// `weight` ones at first.
#[derive(Clone, Debug)]
pub struct RmsNorm {
    /// (d), when elementwise-affine.
    pub weight: Option<Var>,
    /// Added to the mean square.
    pub eps: f32,
}

impl RmsNorm {
    /// `torch.nn.RMSNorm(d, eps=1e-6)`. (PyTorch's default eps is the
    /// dtype's machine epsilon; pass it explicitly to compare.)
    pub fn new(device: &Device, d: usize, eps: f32) -> Result<Self> {
        Ok(Self {
            weight: Some(Var::param(Tensor::full(device, &[d], 1.0)?)),
            eps,
        })
    }
}

impl Module for RmsNorm {
    fn named_parameters(&self) -> Vec<(String, Var)> {
        self.weight
            .clone()
            .map(|w| vec![("weight".to_string(), w)])
            .unwrap_or_default()
    }
}

impl Layer for RmsNorm {
    fn forward(&self, x: &Var) -> Result<Var> {
        F::rms_norm(x, self.weight.as_ref(), self.eps)
    }
}

/// Inverted dropout (`torch.nn.Dropout(p)`), active in training mode only,
/// with its own random stream (clones share it).
#[derive(Clone, Debug)]
pub struct Dropout {
    p: f32,
    rng: Arc<Mutex<Rng>>,
    training: TrainingFlag,
}

impl Dropout {
    /// Dropout with probability `p` in [0, 1), masks drawn from `seed`.
    pub fn new(p: f32, seed: u64) -> Result<Self> {
        if !(0.0..1.0).contains(&p) {
            return Err(Error::InvalidArgument {
                op: "Dropout::new",
                what: format!("p must be in [0, 1), got {p}"),
            });
        }
        Ok(Self {
            p,
            rng: Arc::new(Mutex::new(Rng::new(seed))),
            training: TrainingFlag::default(),
        })
    }

    /// The random stream's state, for checkpoints.
    pub fn rng_state(&self) -> u64 {
        self.rng.lock().unwrap_or_else(|e| e.into_inner()).state()
    }

    /// Restores the random stream from [`Dropout::rng_state`].
    pub fn set_rng_state(&self, state: u64) {
        *self.rng.lock().unwrap_or_else(|e| e.into_inner()) = Rng::new(state);
    }
}

impl Module for Dropout {
    fn named_parameters(&self) -> Vec<(String, Var)> {
        Vec::new()
    }

    fn set_training(&self, training: bool) {
        self.training.set(training);
    }
}

impl Layer for Dropout {
    fn forward(&self, x: &Var) -> Result<Var> {
        if !self.training.get() || self.p == 0.0 {
            return Ok(x.clone());
        }
        let mut rng = self.rng.lock().unwrap_or_else(|e| e.into_inner());
        F::dropout(x, self.p, &mut rng)
    }
}
