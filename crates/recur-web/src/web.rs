//! The JavaScript face of the crate (wasm32 only): `Gpu` opens the
//! browser's WebGPU adapter and runs the checks; `Trainer` trains, streams
//! and loads checkpoints. Every method that waits on the GPU is a Promise;
//! errors are thrown as `Error`s carrying recur's typed message.

use recur_gpu::Device;
use wasm_bindgen::prelude::*;

use crate::{checks, CharTrainer, TrainerConfig};

fn js(e: impl std::fmt::Display) -> JsError {
    JsError::new(&e.to_string())
}

/// The browser's GPU as a recur device.
#[wasm_bindgen]
pub struct Gpu {
    device: Device,
}

#[wasm_bindgen]
impl Gpu {
    /// Opens the default WebGPU adapter.
    pub async fn open() -> Result<Gpu, JsError> {
        Ok(Gpu {
            device: Device::new_async().await.map_err(js)?,
        })
    }

    /// The adapter, its backend and features, as JSON.
    pub fn adapter(&self) -> String {
        let i = self.device.info();
        serde_json::json!({
            "name": i.name,
            "backend": format!("{:?}", i.backend),
            "features": format!("{:?}", i.features),
            "subgroups": [i.subgroup_size.0, i.subgroup_size.1],
        })
        .to_string()
    }

    /// Every kernel check ([`checks::run_all`]) as a JSON array.
    pub async fn checks(&self) -> Result<String, JsError> {
        let all = checks::run_all(&self.device).await.map_err(js)?;
        serde_json::to_string(&all).map_err(js)
    }
}

/// A character model being trained or sampled ([`CharTrainer`]).
#[wasm_bindgen]
pub struct Trainer {
    inner: CharTrainer,
}

#[wasm_bindgen]
impl Trainer {
    /// A fresh model on `text`; `config` is JSON for [`TrainerConfig`]
    /// (missing fields take their defaults, unknown ones are an error).
    pub fn create(gpu: &Gpu, text: &str, config: &str) -> Result<Trainer, JsError> {
        let config: TrainerConfig = serde_json::from_str(config).map_err(js)?;
        Ok(Trainer {
            inner: CharTrainer::new(&gpu.device, text, config).map_err(js)?,
        })
    }

    /// A model from the bytes of a `char_lm` checkpoint (safetensors).
    #[wasm_bindgen(js_name = fromCheckpoint)]
    pub fn from_checkpoint(gpu: &Gpu, bytes: &[u8]) -> Result<Trainer, JsError> {
        Ok(Trainer {
            inner: CharTrainer::from_checkpoint(&gpu.device, bytes).map_err(js)?,
        })
    }

    /// One update; resolves to the loss in nats per character.
    #[wasm_bindgen(js_name = trainStep)]
    pub async fn train_step(&mut self) -> Result<f32, JsError> {
        self.inner.train_step().await.map_err(js)
    }

    /// `n` characters after `prompt`, each passed to `onChar` as sampled;
    /// resolves to the whole text.
    pub async fn generate(
        &self,
        prompt: &str,
        n: usize,
        temperature: f32,
        seed: u64,
        on_char: js_sys::Function,
    ) -> Result<String, JsError> {
        let this = JsValue::NULL;
        self.inner
            .generate(prompt, n, temperature, seed, |c| {
                let _ = on_char.call1(&this, &JsValue::from_str(c.encode_utf8(&mut [0; 4])));
            })
            .await
            .map_err(js)
    }

    /// The model as `char_lm` checkpoint bytes.
    pub async fn checkpoint(&self) -> Result<Vec<u8>, JsError> {
        self.inner.checkpoint_bytes().await.map_err(js)
    }

    #[wasm_bindgen(getter, js_name = numParameters)]
    pub fn num_parameters(&self) -> usize {
        self.inner.num_parameters()
    }

    #[wasm_bindgen(getter, js_name = tokensPerStep)]
    pub fn tokens_per_step(&self) -> usize {
        self.inner.tokens_per_step()
    }

    #[wasm_bindgen(getter)]
    pub fn model(&self) -> String {
        let c = self.inner.config();
        format!("{} {}x{}", c.model, c.layers, c.hidden)
    }

    #[wasm_bindgen(getter, js_name = vocabSize)]
    pub fn vocab_size(&self) -> usize {
        self.inner.vocab().len()
    }

    #[wasm_bindgen(getter)]
    pub fn steps(&self) -> u64 {
        self.inner.steps()
    }
}
