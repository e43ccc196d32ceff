//! A token language model over any stateful backbone: embedding →
//! recurrent layers → (RMSNorm) → linear head, carrying one [`State`].
//! `char_lm` trains it and `recur-serve` serves it; its configuration
//! travels in checkpoint metadata so a checkpoint rebuilds its model.

use std::collections::HashMap;

use recur_gpu::ops::rnn::Cell;
use recur_gpu::{DType, Device, Error, Result, Rng, Tensor};

use super::{PreNorm, Stack, State, Stateful};
use crate::attention::{GlaConfig, LinearAttentionConfig, RetentionConfig};
use crate::autograd::Var;
use crate::functional as F;
use crate::layers::{Embedding, RmsNorm};
use crate::linear::{Linear, LinearConfig};
use crate::mamba::MambaConfig;
use crate::mamba2::Mamba2Config;
use crate::mamba_lm::MambaBlock;
use crate::minrnn::{MinCell, MinRnnBlock};
use crate::module::{prefixed, Layer, Module};
use crate::recurrent::{Recurrent, RecurrentConfig};

/// The layer family of a [`SequenceLm`], by its `char_lm --model` name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// PyTorch's LSTM layers (`lstm`).
    Lstm,
    /// PyTorch's GRU layers (`gru`).
    Gru,
    /// PyTorch's tanh RNN layers (`rnn`).
    Rnn,
    /// minGRU blocks (`mingru`).
    MinGru,
    /// minLSTM blocks (`minlstm`).
    MinLstm,
    /// Mamba blocks (`mamba`).
    Mamba,
    /// Mamba-2 blocks (`mamba2`).
    Mamba2,
    /// Linear-attention blocks (`linear`).
    Linear,
    /// RetNet retention blocks (`retnet`).
    Retnet,
    /// GLA blocks (`gla`).
    Gla,
}

impl Family {
    /// Every family.
    pub const ALL: [Family; 10] = [
        Family::Lstm,
        Family::Gru,
        Family::Rnn,
        Family::MinGru,
        Family::MinLstm,
        Family::Mamba,
        Family::Mamba2,
        Family::Linear,
        Family::Retnet,
        Family::Gla,
    ];

    /// Its `--model` name.
    pub fn name(self) -> &'static str {
        match self {
            Family::Lstm => "lstm",
            Family::Gru => "gru",
            Family::Rnn => "rnn",
            Family::MinGru => "mingru",
            Family::MinLstm => "minlstm",
            Family::Mamba => "mamba",
            Family::Mamba2 => "mamba2",
            Family::Linear => "linear",
            Family::Retnet => "retnet",
            Family::Gla => "gla",
        }
    }

    /// The family named `name`.
    pub fn parse(name: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|f| f.name() == name)
            .ok_or_else(|| Error::InvalidArgument {
                op: "Family::parse",
                what: format!(
                    "unknown model {name:?}: choose {}",
                    Self::ALL.map(Family::name).join(", ")
                ),
            })
    }

    fn cell(self) -> Option<Cell> {
        match self {
            Family::Lstm => Some(Cell::Lstm),
            Family::Gru => Some(Cell::Gru),
            Family::Rnn => Some(Cell::RnnTanh),
            _ => None,
        }
    }
}

/// Sizes of a [`SequenceLm`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SequenceLmConfig {
    /// The layers.
    pub family: Family,
    /// Tokens.
    pub vocab: usize,
    /// Width of the layers.
    pub hidden: usize,
    /// Layers (blocks).
    pub layers: usize,
    /// Embedding width of the PyTorch-style layers (the blocks are
    /// residual: their embedding is `hidden` wide).
    pub embed: usize,
    /// Dropout between PyTorch-style layers in training.
    pub dropout: f32,
}

impl SequenceLmConfig {
    /// Metadata entries naming this configuration (`model`, `vocab_size`,
    /// `hidden`, `layers`, `embed`).
    pub fn metadata(&self) -> Vec<(String, String)> {
        [
            ("model", self.family.name().to_string()),
            ("vocab_size", self.vocab.to_string()),
            ("hidden", self.hidden.to_string()),
            ("layers", self.layers.to_string()),
            ("embed", self.embed.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// The configuration in checkpoint metadata (see
    /// [`SequenceLmConfig::metadata`]); a typed error names what is missing
    /// or malformed.
    pub fn from_metadata(meta: &HashMap<String, String>) -> Result<Self> {
        let get = |k: &str| {
            meta.get(k).ok_or_else(|| Error::InvalidArgument {
                op: "SequenceLmConfig::from_metadata",
                what: format!("the checkpoint has no {k:?} entry"),
            })
        };
        let num = |k: &str| -> Result<usize> {
            get(k)?.parse().map_err(|_| Error::InvalidArgument {
                op: "SequenceLmConfig::from_metadata",
                what: format!("{k:?} is not a count"),
            })
        };
        let c = Self {
            family: Family::parse(get("model")?)?,
            vocab: num("vocab_size")?,
            hidden: num("hidden")?,
            layers: num("layers")?,
            embed: num("embed")?,
            dropout: 0.0,
        };
        // Hostile metadata must not allocate without bound.
        if c.vocab == 0 || c.hidden == 0 || c.layers == 0 || c.embed == 0 {
            return Err(Error::InvalidArgument {
                op: "SequenceLmConfig::from_metadata",
                what: format!("empty sizes in {c:?}"),
            });
        }
        if c.vocab > 1 << 20 || c.hidden > 1 << 14 || c.layers > 256 || c.embed > 1 << 14 {
            return Err(Error::InvalidArgument {
                op: "SequenceLmConfig::from_metadata",
                what: format!("implausible sizes in {c:?}"),
            });
        }
        Ok(c)
    }

    /// A model with each family's initialisation (the order of `char_lm`'s
    /// first version, so seeds give the same weights).
    pub fn init(&self, dev: &Device, rng: &mut Rng) -> Result<SequenceLm> {
        let (v, h, n) = (self.vocab, self.hidden, self.layers);
        if let Some(cell) = self.family.cell() {
            let embedding = Embedding::new(dev, v, self.embed, rng)?;
            let rnn = RecurrentConfig {
                num_layers: n,
                dropout: self.dropout,
                batch_first: true,
                ..RecurrentConfig::new(cell, self.embed, h)
            }
            .init(dev, rng)?;
            let out = LinearConfig::new(h, v).init(dev, rng)?;
            return Ok(SequenceLm {
                config: *self,
                embedding,
                classic: Some(rnn.clone()),
                rnn: Box::new(rnn),
                norm: None,
                out,
            });
        }
        let mut layers: Vec<Box<dyn Stateful + Send + Sync>> = Vec::with_capacity(n);
        for _ in 0..n {
            layers.push(self.block(dev, rng)?);
        }
        let eps = match self.family {
            Family::MinGru | Family::MinLstm => 1e-6,
            _ => 1e-5,
        };
        Ok(SequenceLm {
            config: *self,
            embedding: Embedding::new(dev, v, h, rng)?,
            classic: None,
            rnn: Box::new(Stack { layers }),
            norm: Some(RmsNorm::new(dev, h, eps)?),
            out: LinearConfig::new(h, v).init(dev, rng)?,
        })
    }

    fn block(&self, dev: &Device, rng: &mut Rng) -> Result<Box<dyn Stateful + Send + Sync>> {
        let h = self.hidden;
        let heads = (h / 64).max(1);
        let norm = |dev: &Device| RmsNorm::new(dev, h, 1e-5);
        Ok(match self.family {
            Family::MinGru => Box::new(MinRnnBlock::new(dev, MinCell::Gru, h, true, rng)?),
            Family::MinLstm => Box::new(MinRnnBlock::new(dev, MinCell::Lstm, h, true, rng)?),
            Family::Mamba => Box::new(MambaBlock {
                norm: norm(dev)?,
                mixer: MambaConfig::new(h).init(dev, rng)?,
            }),
            Family::Mamba2 => Box::new(PreNorm {
                mixer: Box::new(Mamba2Config::new(h).init(dev, rng)?),
                norm: norm(dev)?,
            }),
            Family::Linear => Box::new(PreNorm {
                mixer: Box::new(LinearAttentionConfig::new(h, heads).init(dev, rng)?),
                norm: norm(dev)?,
            }),
            Family::Retnet => Box::new(PreNorm {
                mixer: Box::new(RetentionConfig::new(h, heads).init(dev, rng)?),
                norm: norm(dev)?,
            }),
            Family::Gla => Box::new(PreNorm {
                mixer: Box::new(GlaConfig::new(h, heads).init(dev, rng)?),
                norm: norm(dev)?,
            }),
            Family::Lstm | Family::Gru | Family::Rnn => unreachable!("built by init"),
        })
    }
}

/// embedding → recurrent layers → (RMSNorm) → linear head, named as the
/// PyTorch module with submodules `embedding`, `rnn`, (`norm`) and `out`.
pub struct SequenceLm {
    config: SequenceLmConfig,
    /// Token embedding.
    pub embedding: Embedding,
    /// The recurrent layers (a [`Stack`] of blocks, or PyTorch-style
    /// layers).
    pub rnn: Box<dyn Stateful + Send + Sync>,
    /// After the blocks.
    pub norm: Option<RmsNorm>,
    /// The head.
    pub out: Linear,
    /// The PyTorch-style layers again (a clone sharing their weights and
    /// dropout generator), for what only they have.
    classic: Option<Recurrent>,
}

impl Module for SequenceLm {
    fn named_parameters(&self) -> Vec<(String, Var)> {
        let mut v = prefixed("embedding", &self.embedding);
        v.extend(prefixed("rnn", &*self.rnn));
        if let Some(n) = &self.norm {
            v.extend(prefixed("norm", n));
        }
        v.extend(prefixed("out", &self.out));
        v
    }

    fn set_training(&self, training: bool) {
        self.rnn.set_training(training);
    }
}

impl SequenceLm {
    /// The configuration.
    pub fn config(&self) -> &SequenceLmConfig {
        &self.config
    }

    /// The layers' outputs (B, T, H) (after the final norm) for token ids
    /// (B, T) from `state` (zeros when absent), and the next state.
    pub fn features(&self, ids: &Tensor, state: Option<&State>) -> Result<(Var, State)> {
        let x = self.embedding.forward(ids)?;
        let (y, s) = self.rnn.forward_state(&x, state)?;
        Ok((self.normed(&y)?, s))
    }

    fn normed(&self, y: &Var) -> Result<Var> {
        match &self.norm {
            Some(n) => n.forward(y),
            None => Ok(y.clone()),
        }
    }

    /// Logits (B, T, vocab) for ids (B, T) from `state`, and the next state.
    pub fn forward_state(&self, ids: &Tensor, state: Option<&State>) -> Result<(Var, State)> {
        let (y, s) = self.features(ids, state)?;
        Ok((self.out.forward(&y)?, s))
    }

    /// One token per stream, ids (B): logits (B, vocab) and the next state;
    /// equal to [`SequenceLm::forward_state`] over T = 1.
    pub fn step(&self, ids: &Tensor, state: Option<&State>) -> Result<(Var, State)> {
        let x = self.embedding.forward(ids)?;
        let (y, s) = self.rnn.step(&x, state)?;
        Ok((self.out.forward(&self.normed(&y)?)?, s))
    }

    /// The PyTorch-style layers, when the family is one (their dropout
    /// generator's state goes into training checkpoints).
    pub fn recurrent(&self) -> Option<&Recurrent> {
        self.classic.as_ref()
    }

    /// The zero state for `batch` streams.
    pub fn zero_state(&self, device: &Device, batch: usize) -> Result<State> {
        self.rnn.zero_state(device, batch)
    }

    /// `n` tokens after `prompt` (one stream, no gradients): the prompt is
    /// fed token by token, then each sampled token ([`sample_token`] with
    /// `rng`) is fed back. What `char_lm` samples and `recur-serve` streams.
    /// Blocking, native only: a browser uses [`SequenceLm::generate_async`].
    #[cfg(not(target_arch = "wasm32"))]
    pub fn generate(
        &self,
        device: &Device,
        prompt: &[u32],
        n: usize,
        sampling: (f32, Option<usize>),
        rng: &mut Rng,
    ) -> Result<Vec<u32>> {
        pollster::block_on(self.generate_async(device, prompt, n, sampling, rng, |_| ()))
    }

    /// [`SequenceLm::generate`], awaiting each readback; `on_token` sees
    /// every sampled token as it comes (a page streams it). LSTM, GRU and
    /// RNN models step through their fused inference form
    /// ([`SequenceLm::fused`]: weights transposed once per call, then one
    /// dispatch per layer per token); the others through
    /// [`SequenceLm::step`].
    pub async fn generate_async(
        &self,
        device: &Device,
        prompt: &[u32],
        n: usize,
        (temperature, top_k): (f32, Option<usize>),
        rng: &mut Rng,
        mut on_token: impl FnMut(u32),
    ) -> Result<Vec<u32>> {
        let fused = match self.config.family {
            Family::Lstm | Family::Gru | Family::Rnn => Some(self.fused(DType::F32)?),
            _ => None,
        };
        // No gradients, with the guard never held across an await (another
        // task of the page, a training loop, may run meanwhile).
        let step = |t: u32, state: Option<State>| -> Result<(Tensor, State)> {
            let ids = Tensor::from_slice_u32(device, &[t], &[1])?;
            match &fused {
                Some(f) => {
                    let state = state.map_or_else(|| self.zero_state(device, 1), Ok)?;
                    f.step(&ids, state, None)
                }
                None => {
                    let _g = crate::autograd::no_grad();
                    let (logits, next) = self.step(&ids, state.as_ref())?;
                    Ok((logits.value().clone(), next))
                }
            }
        };
        let (&last, head) = prompt.split_last().ok_or_else(|| Error::InvalidArgument {
            op: "SequenceLm::generate",
            what: "an empty prompt".into(),
        })?;
        let mut state = None::<State>;
        for &t in head {
            state = Some(step(t, state)?.1);
        }
        let (mut cur, mut out) = (last, Vec::with_capacity(n));
        for _ in 0..n {
            let (logits, next) = step(cur, state)?;
            cur = sample_token(&logits.to_vec_async().await?, temperature, top_k, rng)?;
            on_token(cur);
            out.push(cur);
            state = Some(next);
        }
        Ok(out)
    }

    /// Logits (B·T, vocab) of `features` rows, for a loss.
    pub fn logits_rows(&self, features: &Var) -> Result<Var> {
        let s = features.shape();
        let rows = s[..s.len() - 1].iter().product();
        self.out
            .forward(&F::reshape(features, &[rows, s[s.len() - 1]])?)
    }
}

/// One token from `logits` (host side): softmax at `temperature` over the
/// `top_k` largest (all when `None`), then the first token whose
/// cumulative probability exceeds one uniform draw of `rng`. The same seed
/// gives the same tokens in `char_lm` and `recur-serve`.
pub fn sample_token(
    logits: &[f32],
    temperature: f32,
    top_k: Option<usize>,
    rng: &mut Rng,
) -> Result<u32> {
    let op = "sample_token";
    if logits.is_empty() || logits.iter().any(|x| !x.is_finite()) {
        return Err(Error::InvalidArgument {
            op,
            what: format!("{} logits, not all finite", logits.len()),
        });
    }
    if !(temperature.is_finite() && temperature >= 0.0) {
        return Err(Error::InvalidArgument {
            op,
            what: format!("temperature {temperature}"),
        });
    }
    let mut order: Vec<usize> = (0..logits.len()).collect();
    let k = top_k.unwrap_or(logits.len()).clamp(1, logits.len());
    if k < logits.len() {
        order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
        order.truncate(k);
        order.sort_unstable();
    }
    let t = temperature.max(1e-3);
    let top = order
        .iter()
        .map(|&i| logits[i])
        .fold(f32::NEG_INFINITY, f32::max);
    let w: Vec<f64> = order
        .iter()
        .map(|&i| (((logits[i] - top) / t) as f64).exp())
        .collect();
    let total: f64 = w.iter().sum();
    let u = rng.next_f32() as f64 * total;
    let mut acc = 0.0;
    for (&i, wi) in order.iter().zip(&w) {
        acc += wi;
        if u < acc {
            return Ok(i as u32);
        }
    }
    Ok(*order.last().unwrap_or(&0) as u32)
}
