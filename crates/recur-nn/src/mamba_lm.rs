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
use crate::linear::{Linear, LinearConfig};
use crate::mamba::{Mamba, MambaConfig, MambaState};
use crate::mamba2::{Mamba2, Mamba2Config, Mamba2State};
use crate::module::{prefixed, Layer, Module};

/// A sequence mixer that a [`MambaBlock`] wraps: Mamba or Mamba-2.
pub trait Mixer: Module + Clone + std::fmt::Debug {
    /// Its state between calls.
    type State: Clone + std::fmt::Debug;
    /// Its configuration.
    type Config: Copy + std::fmt::Debug;
    /// Builds one with its library's initialisation.
    fn init(config: &Self::Config, device: &Device, rng: &mut Rng) -> Result<Self>;
    /// The model width of a configuration.
    fn d_model(config: &Self::Config) -> usize;
    /// The whole sequence (B, L, d_model) from `state` (zeros when absent).
    fn forward_with_state(
        &self,
        x: &Var,
        state: Option<&Self::State>,
    ) -> Result<(Var, Self::State)>;
    /// The output projection's weight (scaled by 1/√n_layer at init).
    fn out_proj_weight(&self) -> &Var;
}

/// The configuration of a [`Mixer`], naming it.
pub trait MixerConfig: Copy + std::fmt::Debug {
    /// The mixer it builds.
    type Mixer: Mixer<Config = Self>;
}

impl MixerConfig for MambaConfig {
    type Mixer = Mamba;
}

impl MixerConfig for Mamba2Config {
    type Mixer = Mamba2;
}

impl Mixer for Mamba {
    type State = MambaState;
    type Config = MambaConfig;
    fn init(config: &MambaConfig, device: &Device, rng: &mut Rng) -> Result<Self> {
        config.init(device, rng)
    }
    fn d_model(config: &MambaConfig) -> usize {
        config.d_model
    }
    fn forward_with_state(&self, x: &Var, state: Option<&MambaState>) -> Result<(Var, MambaState)> {
        Mamba::forward_with_state(self, x, state)
    }
    fn out_proj_weight(&self) -> &Var {
        &self.out_proj.weight
    }
}

impl Mixer for Mamba2 {
    type State = Mamba2State;
    type Config = Mamba2Config;
    fn init(config: &Mamba2Config, device: &Device, rng: &mut Rng) -> Result<Self> {
        config.init(device, rng)
    }
    fn d_model(config: &Mamba2Config) -> usize {
        config.d_model
    }
    fn forward_with_state(
        &self,
        x: &Var,
        state: Option<&Mamba2State>,
    ) -> Result<(Var, Mamba2State)> {
        Mamba2::forward_with_state(self, x, state)
    }
    fn out_proj_weight(&self) -> &Var {
        &self.out_proj.weight
    }
}

/// One residual block: `x + Mamba(RMSNorm(x))`.
#[derive(Clone, Debug)]
pub struct MambaBlock<M: Mixer = Mamba> {
    /// Before the mixer (weight `norm.weight`).
    pub norm: RmsNorm,
    /// The Mamba layer (`mixer.*`).
    pub mixer: M,
}

impl<M: Mixer> MambaBlock<M> {
    /// The block over a sequence (B, L, d_model) from `state`.
    pub fn forward_with_state(&self, x: &Var, state: Option<&M::State>) -> Result<(Var, M::State)> {
        let (y, s) = self
            .mixer
            .forward_with_state(&self.norm.forward(x)?, state)?;
        Ok((F::add(x, &y)?, s))
    }
}

impl<M: Mixer> Module for MambaBlock<M> {
    fn named_parameters(&self) -> Vec<(String, Var)> {
        let mut v = prefixed("norm", &self.norm);
        v.extend(prefixed("mixer", &self.mixer));
        v
    }
}

/// Sizes of a [`MambaLm`] (mamba_ssm's `MambaConfig`).
#[derive(Clone, Copy, Debug)]
pub struct MambaLmConfig<C = MambaConfig> {
    /// Vocabulary size.
    pub vocab: usize,
    /// Number of blocks.
    pub n_layer: usize,
    /// The blocks' mixers ([`MambaConfig`] or [`Mamba2Config`]).
    pub mamba: C,
    /// ε of every RMSNorm (1e-5).
    pub norm_eps: f32,
    /// The head is the embedding (true, mamba_ssm's default); else a
    /// separate `lm_head.weight` (Hugging Face's `Mamba2ForCausalLM`).
    pub tie_embeddings: bool,
}

impl MambaLmConfig {
    /// `n_layer` Mamba blocks of width `d_model` with mamba_ssm's defaults.
    pub fn new(vocab: usize, d_model: usize, n_layer: usize) -> Self {
        Self {
            vocab,
            n_layer,
            mamba: MambaConfig::new(d_model),
            norm_eps: 1e-5,
            tie_embeddings: true,
        }
    }
}

impl MambaLmConfig<Mamba2Config> {
    /// `n_layer` Mamba-2 blocks of width `d_model` with mamba_ssm's defaults.
    pub fn mamba2(vocab: usize, d_model: usize, n_layer: usize) -> Self {
        Self {
            vocab,
            n_layer,
            mamba: Mamba2Config::new(d_model),
            norm_eps: 1e-5,
            tie_embeddings: true,
        }
    }
}

impl<C: MixerConfig> MambaLmConfig<C> {
    /// Builds the model with mamba_ssm's `_init_weights`: embedding
    /// N(0, 0.02²), each `out_proj.weight` scaled by 1/√n_layer.
    pub fn init(&self, device: &Device, rng: &mut Rng) -> Result<MambaLm<C::Mixer>> {
        if self.vocab == 0 || self.n_layer == 0 {
            return Err(Error::InvalidArgument {
                op: "MambaLmConfig::init",
                what: format!("vocab and n_layer must be positive: {self:?}"),
            });
        }
        type M<C> = <C as MixerConfig>::Mixer;
        let d = M::<C>::d_model(&self.mamba);
        let embedding = Embedding {
            weight: Var::param(Tensor::randn(device, &[self.vocab, d], 0.0, 0.02, rng)?),
        };
        let scale = 1.0 / (self.n_layer as f32).sqrt();
        let layers = (0..self.n_layer)
            .map(|_| {
                let mixer = M::<C>::init(&self.mamba, device, rng)?;
                let w = recur_gpu::ops::elementwise::scale(mixer.out_proj_weight().value(), scale)?;
                mixer.out_proj_weight().assign(&w)?;
                Ok(MambaBlock {
                    norm: RmsNorm::new(device, d, self.norm_eps)?,
                    mixer,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let lm_head = if self.tie_embeddings {
            None
        } else {
            let head = LinearConfig {
                bias: false,
                ..LinearConfig::new(d, self.vocab)
            };
            Some(head.init(device, rng)?)
        };
        Ok(MambaLm {
            config: *self,
            embedding,
            layers,
            norm_f: RmsNorm::new(device, d, self.norm_eps)?,
            lm_head,
        })
    }
}

/// A Mamba (or Mamba-2) language model.
#[derive(Clone, Debug)]
pub struct MambaLm<M: Mixer = Mamba> {
    config: MambaLmConfig<M::Config>,
    /// (vocab, d_model), also the head's weight when tied.
    pub embedding: Embedding,
    /// The residual blocks.
    pub layers: Vec<MambaBlock<M>>,
    /// The final norm.
    pub norm_f: RmsNorm,
    /// The head when not tied to the embedding (`lm_head.weight`).
    pub lm_head: Option<Linear>,
}

impl<M: Mixer> MambaLm<M> {
    /// The configuration.
    pub fn config(&self) -> &MambaLmConfig<M::Config> {
        &self.config
    }

    /// Logits (B, L, vocab) for `ids` (B, L) from per-layer `state` (empty
    /// for zeros), and the states after the last step.
    pub fn forward_with_state(
        &self,
        ids: &Tensor,
        state: &[M::State],
    ) -> Result<(Var, Vec<M::State>)> {
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
        let head = match &self.lm_head {
            Some(l) => &l.weight,
            None => &self.embedding.weight,
        };
        Ok((F::linear(&h, head, None)?, next))
    }

    /// Loads a mamba_ssm or Hugging Face checkpoint (safetensors) by name:
    /// `backbone.embedding.weight` may be `backbone.embeddings.weight`, and
    /// a `lm_head.weight` is ignored when the head is tied to the embedding.
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

impl<M: Mixer> Module for MambaLm<M> {
    /// mamba_ssm's names; a tied head has none of its own.
    fn named_parameters(&self) -> Vec<(String, Var)> {
        let mut v = prefixed("backbone.embedding", &self.embedding);
        for (i, b) in self.layers.iter().enumerate() {
            v.extend(prefixed(&format!("backbone.layers.{i}"), b));
        }
        v.extend(prefixed("backbone.norm_f", &self.norm_f));
        if let Some(h) = &self.lm_head {
            v.extend(prefixed("lm_head", h));
        }
        v
    }
}
