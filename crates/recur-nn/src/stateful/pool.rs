//! Many independent streams of one model in batched state tensors: open,
//! close, reset, snapshot and restore one stream without touching the
//! others, and advance every stream that has input with one batched step.

use std::sync::Arc;

use recur_gpu::{DType, Device, Error, Result, Tensor};

use super::{FusedLm, SequenceLm, State};
use crate::autograd::{no_grad, Var};
use crate::functional as F;

/// A stream of a [`StreamPool`]: its slot and the generation of that slot
/// (an id kept after `close` no longer reaches the slot's next stream).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct StreamId {
    slot: usize,
    generation: u64,
}

impl StreamId {
    /// The stream's row in the pool's batched state.
    pub fn slot(&self) -> usize {
        self.slot
    }
}

/// Up to `capacity` streams of one [`SequenceLm`] in one batched [`State`].
pub struct StreamPool {
    model: Arc<SequenceLm>,
    /// The inference form, for the families that have one.
    fused: Option<FusedLm>,
    device: Device,
    state: State,
    slots: Vec<Option<u64>>,
    generation: u64,
}

impl StreamPool {
    /// An empty pool of `capacity` streams.
    pub fn new(model: Arc<SequenceLm>, device: &Device, capacity: usize) -> Result<Self> {
        Self::with_weights(model, device, capacity, DType::F32)
    }

    /// [`StreamPool::new`] with the fused step's weights stored in `dtype`
    /// (F16 halves their memory and bandwidth where the adapter has
    /// SHADER_F16; the state and the math stay f32). Families without a
    /// fused step ignore it.
    pub fn with_weights(
        model: Arc<SequenceLm>,
        device: &Device,
        capacity: usize,
        dtype: DType,
    ) -> Result<Self> {
        if capacity == 0 {
            return Err(Error::InvalidArgument {
                op: "StreamPool::new",
                what: "a pool needs at least one stream".into(),
            });
        }
        let state = model.zero_state(device, capacity)?;
        let fused = match model.recurrent() {
            Some(_) => Some(model.fused(dtype)?),
            None => None,
        };
        Ok(Self {
            model,
            fused,
            device: device.clone(),
            state,
            slots: vec![None; capacity],
            generation: 0,
        })
    }

    /// The model.
    pub fn model(&self) -> &SequenceLm {
        &self.model
    }

    /// Streams the pool can hold.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Open streams.
    pub fn active(&self) -> usize {
        self.slots.iter().filter(|s| s.is_some()).count()
    }

    /// Opens a stream from the zero state; an error when the pool is full.
    pub fn open(&mut self) -> Result<StreamId> {
        let slot =
            self.slots
                .iter()
                .position(Option::is_none)
                .ok_or_else(|| Error::InvalidArgument {
                    op: "StreamPool::open",
                    what: format!("all {} streams are open", self.capacity()),
                })?;
        self.state.reset(slot, 1)?;
        self.generation += 1;
        self.slots[slot] = Some(self.generation);
        Ok(StreamId {
            slot,
            generation: self.generation,
        })
    }

    fn check(&self, op: &'static str, id: StreamId) -> Result<()> {
        match self.slots.get(id.slot) {
            Some(Some(g)) if *g == id.generation => Ok(()),
            _ => Err(Error::InvalidArgument {
                op,
                what: format!("stream {id:?} is not open"),
            }),
        }
    }

    /// Closes a stream; its slot is free for the next `open`.
    pub fn close(&mut self, id: StreamId) -> Result<()> {
        self.check("StreamPool::close", id)?;
        self.slots[id.slot] = None;
        Ok(())
    }

    /// Puts a stream back to the zero state at step 0.
    pub fn reset(&mut self, id: StreamId) -> Result<()> {
        self.check("StreamPool::reset", id)?;
        self.state.reset(id.slot, 1)
    }

    /// A copy of one stream's state (one stream's worth of every tensor).
    pub fn snapshot(&self, id: StreamId) -> Result<State> {
        self.check("StreamPool::snapshot", id)?;
        self.state.slice(id.slot, 1)
    }

    /// Puts a [`StreamPool::snapshot`] (of this or another pool of the same
    /// model) into a stream.
    pub fn restore(&mut self, id: StreamId, snapshot: &State) -> Result<()> {
        self.check("StreamPool::restore", id)?;
        if snapshot.batch() != 1 {
            return Err(super::batch_error(
                "StreamPool::restore",
                1,
                snapshot.batch(),
            ));
        }
        self.state.write(id.slot, snapshot)
    }

    /// Steps taken by a stream.
    pub fn steps(&self, id: StreamId) -> Result<usize> {
        self.check("StreamPool::steps", id)?;
        Ok(self.state.steps()[id.slot])
    }

    /// Advances each listed stream by its token, in one batched step of the
    /// whole pool (streams not listed keep their state), and returns each
    /// listed stream's logits over the vocabulary (one readback). LSTM, GRU
    /// and RNN models step through their fused inference form (one
    /// dispatch per layer, masked rows kept by the kernel); the others
    /// through [`SequenceLm::step`] with the state blended by the mask.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn step(&mut self, inputs: &[(StreamId, u32)]) -> Result<Vec<Vec<f32>>> {
        pollster::block_on(self.step_async(inputs))
    }

    /// [`StreamPool::step`], awaiting the readback (the form a browser has).
    pub async fn step_async(&mut self, inputs: &[(StreamId, u32)]) -> Result<Vec<Vec<f32>>> {
        let vocab = self.model.config().vocab;
        match self.record_step(inputs)? {
            Some(logits) => rows(&logits.to_vec_async().await?, inputs, vocab),
            None => Ok(Vec::new()),
        }
    }

    /// Records one batched step; the (rows, vocab) logits, whose row `slot`
    /// is that slot's, or `None` when no stream is listed.
    fn record_step(&mut self, inputs: &[(StreamId, u32)]) -> Result<Option<Tensor>> {
        let op = "StreamPool::step";
        let n = self.capacity();
        let vocab = self.model.config().vocab;
        let mut ids = vec![0u32; n];
        let mut mask = vec![0f32; n];
        for &(id, token) in inputs {
            self.check(op, id)?;
            if token as usize >= vocab {
                return Err(Error::InvalidArgument {
                    op,
                    what: format!("token {token} of a vocabulary of {vocab}"),
                });
            }
            if mask[id.slot] != 0.0 {
                return Err(Error::InvalidArgument {
                    op,
                    what: format!("stream {id:?} listed twice"),
                });
            }
            ids[id.slot] = token;
            mask[id.slot] = 1.0;
        }
        if inputs.is_empty() {
            return Ok(None);
        }
        let _g = no_grad();
        if let Some(f) = &self.fused {
            // One dispatch per layer over the slots up to the last open one
            // (`open` takes the lowest free slot, so a lightly loaded pool
            // steps a few rows, not its capacity), rounded up to 8 rows, or
            // to 64 past 64 (few sizes, so the buffers of a load are soon
            // all pooled); unlisted rows keep their state.
            let last = self.slots.iter().rposition(Option::is_some).unwrap_or(0);
            let quantum = if last < 64 { 8 } else { 64 };
            let m = (last + 1).next_multiple_of(quantum).min(n);
            let active: Vec<bool> = mask[..m].iter().map(|&v| v != 0.0).collect();
            let ids_m = Tensor::from_slice_u32(&self.device, &ids[..m], &[m])?;
            let (logits, next) = f.step_first(&ids_m, self.state.clone(), Some(&active), m)?;
            self.state = next;
            return Ok(Some(logits));
        }
        let ids_t = Tensor::from_slice_u32(&self.device, &ids, &[n])?;
        let (logits, next) = self.model.step(&ids_t, Some(&self.state))?;
        let m = Var::new(Tensor::from_slice(&self.device, &mask, &[n])?);
        let mut steps = self.state.steps().to_vec();
        for &(id, _) in inputs {
            steps[id.slot] += 1;
        }
        let mut blended = State::at_steps(steps);
        for (old, new) in self.state.tensors().iter().zip(next.tensors()) {
            // old + mask ⊙ (new − old): listed rows move, the others stay.
            let d = F::mul_at(&F::sub(&new.value, &old.value)?, &m, old.batch_axis)?;
            blended = blended.with(&old.name, F::add(&old.value, &d)?, old.batch_axis)?;
        }
        self.state = blended;
        Ok(Some(logits.value().clone()))
    }

    /// Whether steps run the fused inference form ([`SequenceLm::fused`]).
    pub fn is_fused(&self) -> bool {
        self.fused.is_some()
    }
}

/// The listed streams' rows of (capacity, vocab) logits.
fn rows(all: &[f32], inputs: &[(StreamId, u32)], vocab: usize) -> Result<Vec<Vec<f32>>> {
    Ok(inputs
        .iter()
        .map(|(id, _)| all[id.slot * vocab..(id.slot + 1) * vocab].to_vec())
        .collect())
}
