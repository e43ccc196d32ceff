//! A character-level language model trained and sampled from a page: the
//! same `SequenceLm` as `char_lm`, fed by truncated backpropagation through
//! time over `batch` streams of one text, with AdamW and gradient clipping.
//! Every GPU wait is awaited, so a browser's main thread never blocks.

use recur_gpu::{Device, Error, Result, Rng, Tensor};
use recur_nn::checkpoint::Checkpoint;
use recur_nn::functional as F;
use recur_nn::{
    clip_grad_norm_params, Adam, AdamConfig, Family, LossReduction, Module, Optimizer, SequenceLm,
    SequenceLmConfig, State, Var,
};
use serde::Deserialize;

/// What the page asks for. The defaults make a minGRU of about 370,000
/// parameters on a ~100-character vocabulary.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainerConfig {
    /// `lstm`, `gru`, `rnn`, `mingru`, `minlstm`, ... ([`Family::parse`]).
    pub model: String,
    pub hidden: usize,
    pub layers: usize,
    pub embed: usize,
    /// Streams trained side by side.
    pub batch: usize,
    /// Steps of backpropagation per update.
    pub window: usize,
    pub lr: f32,
    pub clip: f32,
    pub seed: u64,
}

impl Default for TrainerConfig {
    fn default() -> Self {
        Self {
            model: "mingru".into(),
            hidden: 128,
            layers: 2,
            embed: 48,
            batch: 16,
            window: 32,
            lr: 3e-3,
            clip: 1.0,
            seed: 1,
        }
    }
}

/// The model, its optimizer and where each stream stands in the text.
pub struct CharTrainer {
    device: Device,
    model: SequenceLm,
    params: Vec<Var>,
    opt: Adam,
    vocab: Vec<char>,
    /// The training text as ids (empty for a model loaded to sample only).
    data: Vec<u32>,
    config: TrainerConfig,
    pos: usize,
    state: Option<State>,
    steps: u64,
}

fn invalid(what: String) -> Error {
    Error::InvalidArgument {
        op: "CharTrainer",
        what,
    }
}

impl CharTrainer {
    /// A fresh model on `text`'s characters.
    pub fn new(device: &Device, text: &str, config: TrainerConfig) -> Result<Self> {
        let mut vocab: Vec<char> = text.chars().collect();
        vocab.sort_unstable();
        vocab.dedup();
        let data: Vec<u32> = text
            .chars()
            .filter_map(|c| vocab.binary_search(&c).ok().map(|i| i as u32))
            .collect();
        let (b, t) = (config.batch, config.window);
        if b == 0 || t == 0 || data.len() < b * (t + 1) {
            return Err(invalid(format!(
                "{} characters cannot feed {b} streams of {t}-step windows",
                data.len()
            )));
        }
        let lm = SequenceLmConfig {
            family: Family::parse(&config.model)?,
            vocab: vocab.len(),
            hidden: config.hidden,
            layers: config.layers,
            embed: config.embed,
            dropout: 0.0,
        }
        .init(device, &mut Rng::new(config.seed))?;
        Self::with_model(device, lm, vocab, data, config)
    }

    /// A model from a `char_lm` checkpoint (safetensors bytes, its family,
    /// sizes and vocabulary in the metadata). It samples; training it
    /// needs a text, so [`CharTrainer::train_step`] refuses.
    pub fn from_checkpoint(device: &Device, bytes: &[u8]) -> Result<Self> {
        let ck = Checkpoint::from_bytes(bytes)?;
        let lm_config = SequenceLmConfig::from_metadata(&ck.metadata)?;
        let vocab: Vec<char> = ck
            .metadata
            .get("vocab")
            .ok_or_else(|| invalid("the checkpoint has no vocabulary (not char_lm's)".into()))?
            .chars()
            .collect();
        if vocab.len() != lm_config.vocab {
            return Err(invalid(format!(
                "the checkpoint's vocabulary has {} characters, its model {}",
                vocab.len(),
                lm_config.vocab
            )));
        }
        let lm = lm_config.init(device, &mut Rng::new(0))?;
        lm.load_parameters(device, &ck, "")?;
        let config = TrainerConfig {
            model: lm_config.family.name().into(),
            hidden: lm_config.hidden,
            layers: lm_config.layers,
            embed: lm_config.embed,
            ..TrainerConfig::default()
        };
        Self::with_model(device, lm, vocab, Vec::new(), config)
    }

    fn with_model(
        device: &Device,
        model: SequenceLm,
        vocab: Vec<char>,
        data: Vec<u32>,
        config: TrainerConfig,
    ) -> Result<Self> {
        let params = model.parameters();
        let opt = Adam::for_params(AdamConfig::adamw(config.lr), &params)?;
        Ok(Self {
            device: device.clone(),
            model,
            params,
            opt,
            vocab,
            data,
            config,
            pos: 0,
            state: None,
            steps: 0,
        })
    }

    pub fn num_parameters(&self) -> usize {
        self.model.num_parameters()
    }

    pub fn vocab(&self) -> &[char] {
        &self.vocab
    }

    pub fn config(&self) -> &TrainerConfig {
        &self.config
    }

    /// Updates so far.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Characters consumed per update (batch × window).
    pub fn tokens_per_step(&self) -> usize {
        self.config.batch * self.config.window
    }

    /// One update on the next window of every stream; the mean loss in
    /// nats per character (the update's one readback).
    pub async fn train_step(&mut self) -> Result<f32> {
        let (b, t) = (self.config.batch, self.config.window);
        if self.data.is_empty() {
            return Err(invalid(
                "a model loaded from a checkpoint has no text to train on".into(),
            ));
        }
        let per_stream = self.data.len() / b;
        if self.pos + t + 1 > per_stream {
            (self.pos, self.state) = (0, None); // a new pass over the text
        }
        let (mut ids, mut tg) = (Vec::with_capacity(b * t), Vec::with_capacity(b * t));
        for s in 0..b {
            let at = s * per_stream + self.pos;
            ids.extend_from_slice(&self.data[at..at + t]);
            tg.extend_from_slice(&self.data[at + 1..at + t + 1]);
        }
        self.model.set_training(true);
        let ids = Tensor::from_slice_u32(&self.device, &ids, &[b, t])?;
        let state = self.state.as_ref().map(State::detach);
        let (out, next) = self.model.features(&ids, state.as_ref())?;
        let tg = Tensor::from_slice_u32(&self.device, &tg, &[b * t])?;
        let loss = F::cross_entropy(
            &self.model.logits_rows(&out)?,
            &tg,
            None,
            LossReduction::Mean,
        )?;
        self.model.zero_grad();
        loss.backward()?;
        let clip = clip_grad_norm_params(&self.params, self.config.clip)?;
        self.opt.step_params(&self.params, Some(&clip.scale))?;
        self.state = Some(next.detach());
        self.pos += t;
        self.steps += 1;
        let loss = loss.item_async().await?;
        if !loss.is_finite() {
            return Err(invalid(format!(
                "the loss became {loss} at update {}",
                self.steps
            )));
        }
        Ok(loss)
    }

    /// `n` characters after `prompt` (characters outside the vocabulary
    /// are skipped; an empty prompt starts from the first character),
    /// each handed to `on_char` as soon as it is sampled
    /// ([`SequenceLm::generate_async`]: LSTM, GRU and RNN models through
    /// their fused one-dispatch-per-layer step).
    pub async fn generate(
        &self,
        prompt: &str,
        n: usize,
        temperature: f32,
        seed: u64,
        mut on_char: impl FnMut(char),
    ) -> Result<String> {
        let mut ids: Vec<u32> = prompt
            .chars()
            .filter_map(|c| self.vocab.iter().position(|&v| v == c).map(|i| i as u32))
            .collect();
        if ids.is_empty() {
            ids.push(0);
        }
        let vocab = &self.vocab;
        let mut rng = Rng::new(seed);
        self.model.set_training(false);
        let out = self
            .model
            .generate_async(&self.device, &ids, n, (temperature, None), &mut rng, |id| {
                on_char(vocab[id as usize])
            })
            .await;
        self.model.set_training(true);
        Ok(out?.iter().map(|&i| vocab[i as usize]).collect())
    }

    /// The model as a checkpoint in `char_lm`'s layout (its parameters, its
    /// family, sizes and vocabulary in the metadata): what
    /// [`CharTrainer::from_checkpoint`] and `recur-serve` load.
    pub async fn checkpoint_bytes(&self) -> Result<Vec<u8>> {
        let params = self.model.named_parameters();
        let tensors: Vec<(String, &Tensor)> =
            params.iter().map(|(n, v)| (n.clone(), v.value())).collect();
        let mut meta: std::collections::HashMap<String, String> =
            self.model.config().metadata().into_iter().collect();
        meta.insert("vocab".into(), self.vocab.iter().collect());
        meta.insert("step".into(), self.steps.to_string());
        recur_nn::checkpoint::to_bytes_async(&tensors, &meta).await
    }
}
