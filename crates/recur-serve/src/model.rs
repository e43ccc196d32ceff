//! A `char_lm` checkpoint as a served model: its configuration and
//! vocabulary come from the checkpoint's metadata.

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use recur_gpu::Device;
use recur_nn::checkpoint::Checkpoint;
use recur_nn::{Module, Rng, SequenceLm, SequenceLmConfig};

/// The model, its device and vocabulary.
pub struct Loaded {
    /// The language model (inference mode).
    pub lm: Arc<SequenceLm>,
    /// Where it runs.
    pub device: Device,
    /// Token i is `vocab[i]`.
    pub vocab: Vec<char>,
}

impl Loaded {
    /// Loads a `char_lm --checkpoint` file onto `device`.
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        let ck = Checkpoint::load(path).with_context(|| format!("loading {}", path.display()))?;
        Self::from_checkpoint(&ck, device).with_context(|| format!("{}", path.display()))
    }

    /// The model in a loaded checkpoint.
    pub fn from_checkpoint(ck: &Checkpoint, device: &Device) -> Result<Self> {
        let config = SequenceLmConfig::from_metadata(&ck.metadata)?;
        let vocab: Vec<char> = ck
            .metadata
            .get("vocab")
            .context("no vocabulary in the checkpoint")?
            .chars()
            .collect();
        if vocab.len() != config.vocab {
            bail!(
                "the vocabulary has {} characters, the model {}",
                vocab.len(),
                config.vocab
            );
        }
        let lm = config.init(device, &mut Rng::new(0))?;
        lm.load_parameters(device, ck, "")?;
        lm.set_training(false);
        Ok(Self {
            lm: Arc::new(lm),
            device: device.clone(),
            vocab,
        })
    }

    /// The family's name (`lstm`, `mamba2`, ...).
    pub fn name(&self) -> &'static str {
        self.lm.config().family.name()
    }

    /// Token ids of `text`, or the first character outside the vocabulary.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, char> {
        text.chars()
            .map(|c| {
                self.vocab
                    .iter()
                    .position(|&v| v == c)
                    .map(|i| i as u32)
                    .ok_or(c)
            })
            .collect()
    }
}
