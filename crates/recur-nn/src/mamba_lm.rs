//! The Mamba residual block and language model, as mamba_ssm's
//! `MambaLMHeadModel` (and Hugging Face transformers' `MambaForCausalLM`):
//! embedding → N × (x + Mamba(RMSNorm(x))) → RMSNorm → head tied to the
//! embedding. Parameter names are mamba_ssm's (`backbone.embedding.weight`,
//! `backbone.layers.0.norm.weight`, `backbone.layers.0.mixer.in_proj.weight`,
//! ..., `backbone.norm_f.weight`); [`MambaLm::load`] also takes Hugging
//! Face's (`backbone.embeddings.weight`), so either checkpoint runs as is.

use recur_gpu::{Device, Error, Result, Rng, Tensor};

use crate::autograd::Var;
use crate::checkpoint::Checkpoint;
use crate::functional as F;
use crate::layers::{Embedding, RmsNorm};
use crate::mamba::{Mamba, MambaConfig, MambaState};
use crate::module::{prefixed, Layer, Module};

/// One residual block: `x + Mamba(RMSNorm(x))`.
#[derive(Clone, Debug)]
pub struct MambaBlock {
    /// Before the mixer (weight `norm.weight`).
    pub norm: RmsNorm,
    /// The Mamba layer (`mixer.*`).
    pub mixer: Mamba,
}

impl MambaBlock {
    /// The block over a sequence (B, L, d_model) from `state`.
    pub fn forward_with_state(
        &self,
        x: &Var,
        state: Option<&MambaState>,
    ) -> Result<(Var, MambaState)> {
        let (y, s) = self
            .mixer
            .forward_with_state(&self.norm.forward(x)?, state)?;
        Ok((F::add(x, &y)?, s))
    }
}

impl Module for MambaBlock {
    fn named_parameters(&self) -> Vec<(String, Var)> {
        let mut v = prefixed("norm", &self.norm);
        v.extend(prefixed("mixer", &self.mixer));
        v
    }
}

/// Sizes of a [`MambaLm`] (mamba_ssm's `MambaConfig`).
#[derive(Clone, Copy, Debug)]
pub struct MambaLmConfig {
    /// Vocabulary size.
    pub vocab: usize,
    /// Number of blocks.
    pub n_layer: usize,
    /// The blocks' Mamba layers.
    pub mamba: MambaConfig,
    /// ε of every RMSNorm (1e-5).
    pub norm_eps: f32,
}

impl MambaLmConfig {
    /// `n_layer` blocks of width `d_model` with mamba_ssm's defaults.
    pub fn new(vocab: usize, d_model: usize, n_layer: usize) -> Self {
        Self {
            vocab,
            n_layer,
            mamba: MambaConfig::new(d_model),
            norm_eps: 1e-5,
        }
    }

    /// Builds the model with mamba_ssm's `_init_weights`: embedding
    /// N(0, 0.02²), each `out_proj.weight` scaled by 1/√n_layer.
    pub fn init(&self, device: &Device, rng: &mut Rng) -> Result<MambaLm> {
        if self.vocab == 0 || self.n_layer == 0 {
            return Err(Error::InvalidArgument {
                op: "MambaLmConfig::init",
                what: format!("vocab and n_layer must be positive: {self:?}"),
            });
        }
        let d = self.mamba.d_model;
        let embedding = Embedding {
            weight: Var::param(Tensor::randn(device, &[self.vocab, d], 0.0, 0.02, rng)?),
        };
        let scale = 1.0 / (self.n_layer as f32).sqrt();
        let layers = (0..self.n_layer)
            .map(|_| {
                let mixer = self.mamba.init(device, rng)?;
                let w = recur_gpu::ops::elementwise::scale(mixer.out_proj.weight.value(), scale)?;
                mixer.out_proj.weight.assign(&w)?;
                Ok(MambaBlock {
                    norm: RmsNorm::new(device, d, self.norm_eps)?,
                    mixer,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(MambaLm {
            config: *self,
            embedding,
            layers,
            norm_f: RmsNorm::new(device, d, self.norm_eps)?,
        })
    }
}

/// A Mamba language model with a head tied to the embedding.
#[derive(Clone, Debug)]
pub struct MambaLm {
    config: MambaLmConfig,
    /// (vocab, d_model), also the head's weight.
    pub embedding: Embedding,
    /// The residual blocks.
    pub layers: Vec<MambaBlock>,
    /// The final norm.
    pub norm_f: RmsNorm,
}

impl MambaLm {
    /// The configuration.
    pub fn config(&self) -> &MambaLmConfig {
        &self.config
    }

    /// Logits (B, L, vocab) for `ids` (B, L) from per-layer `state` (empty
    /// for zeros), and the states after the last step.
    pub fn forward_with_state(
        &self,
        ids: &Tensor,
        state: &[MambaState],
    ) -> Result<(Var, Vec<MambaState>)> {
        if !state.is_empty() && state.len() != self.layers.len() {
            return Err(Error::InvalidArgument {
                op: "MambaLm::forward",
                what: format!(
                    "{} layer states for {} layers",
                    state.len(),
                    self.layers.len()
                ),
            });
        }
        let mut x = self.embedding.forward(ids)?;
        let mut next = Vec::with_capacity(self.layers.len());
        for (i, block) in self.layers.iter().enumerate() {
            let (y, s) = block.forward_with_state(&x, state.get(i))?;
            x = y;
            next.push(s);
        }
        let h = self.norm_f.forward(&x)?;
        Ok((F::linear(&h, &self.embedding.weight, None)?, next))
    }

    /// Loads a mamba_ssm or Hugging Face checkpoint (safetensors) by name:
    /// `backbone.embedding.weight` may be `backbone.embeddings.weight`, and
    /// a `lm_head.weight` is ignored (the head is tied to the embedding).
    pub fn load(&self, device: &Device, ck: &Checkpoint) -> Result<()> {
        let has = |n: &str| ck.names().any(|m| m == n);
        let loaded = self
            .named_parameters()
            .into_iter()
            .map(|(name, p)| {
                let alias = name.replace("backbone.embedding.", "backbone.embeddings.");
                let key = if !has(&name) && has(&alias) {
                    alias
                } else {
                    name
                };
                Ok((ck.tensor(device, &key, p.shape())?, p))
            })
            .collect::<Result<Vec<(Tensor, Var)>>>()?;
        loaded.iter().try_for_each(|(t, p)| p.assign(t))
    }
}

impl Module for MambaLm {
    /// mamba_ssm's names; the tied head has none of its own.
    fn named_parameters(&self) -> Vec<(String, Var)> {
        let mut v = prefixed("backbone.embedding", &self.embedding);
        for (i, b) in self.layers.iter().enumerate() {
            v.extend(prefixed(&format!("backbone.layers.{i}"), b));
        }
        v.extend(prefixed("backbone.norm_f", &self.norm_f));
        v
    }
}
