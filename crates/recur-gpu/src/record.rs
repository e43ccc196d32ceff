//! Recording.
//!
//! Ops append [`Dispatch`]es (plain data: a pipeline, its parameter bytes, its
//! buffer ranges and a workgroup count) to the device's open recording.
//! Nothing is encoded or waited on until a readback, [`Device::sync`] or
//! [`Device::flush`]; then the engine (`engine.rs`) encodes all pending
//! dispatches into one compute pass and one submission. A dispatch holds its
//! own clones of the wgpu buffers, so a tensor may be dropped (and its pooled
//! buffer reused by a later op) right after the op that reads it is recorded.

use std::sync::Arc;

use crate::bindings::Bindings;
use crate::device::Device;
use crate::error::{Error, Result};
use crate::kernel::{poisoned, Kernel, KernelKey};
use crate::pool::GpuBuffer;
use crate::tensor::Tensor;

/// Pending dispatches past which the recording is submitted without waiting.
pub const MAX_PENDING_DISPATCHES: usize = 1_024;

/// Submissions that may be queued on the GPU at once: a program that records
/// without ever reading back (a training loop that logs nothing) waits for
/// the oldest beyond this, so queued work and its memory stay bounded.
pub const MAX_IN_FLIGHT: usize = 2;

/// Bytes of the uniform parameter block every dispatch may use: each
/// dispatch binds this much of the device's parameter buffer at its own
/// dynamic offset (build.rs keeps every parameter struct within it).
pub const PARAMS_BLOCK: u64 = 256;

/// A storage binding being recorded: a pooled buffer and the byte range of
/// it the kernel sees. Made from a whole tensor (`(&tensor).into()`) or a
/// range of one ([`Tensor::bind_range`]).
#[derive(Clone, Copy, Debug)]
pub struct Bind<'a> {
    pub(crate) buffer: &'a Arc<GpuBuffer>,
    pub(crate) offset: u64,
    pub(crate) bytes: u64,
}

impl<'a> From<&'a Tensor> for Bind<'a> {
    fn from(t: &'a Tensor) -> Self {
        Bind {
            buffer: t.storage(),
            offset: 0,
            bytes: t.bytes(),
        }
    }
}

impl Tensor {
    /// `len` bytes (at most the tensor's) of this tensor from byte `offset`:
    /// how kernels work on tensors larger than one storage binding.
    pub fn bind_range(&self, offset: u64, len: u64) -> Bind<'_> {
        Bind {
            buffer: self.storage(),
            offset,
            bytes: len.min(self.bytes().saturating_sub(offset)),
        }
    }
}

/// One storage binding of a recorded dispatch: a buffer and the byte range bound.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Binding {
    /// The buffer.
    pub buffer: wgpu::Buffer,
    /// First byte bound (a multiple of the adapter's storage offset alignment).
    pub offset: u64,
    /// Bytes bound from `offset` (a multiple of 4).
    pub bytes: u64,
}

/// One recorded compute dispatch.
#[derive(Debug)]
pub struct Dispatch {
    /// The pipeline.
    pub kernel: Arc<Kernel>,
    /// Contents of the kernel's uniform parameter struct (binding 0).
    pub params: Vec<u8>,
    /// Storage bindings 1.., in order.
    pub bindings: Vec<Binding>,
    /// Workgroup counts.
    pub workgroups: [u32; 3],
}

/// Submission counters, from [`Device::counters`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Dispatches recorded since the device was made.
    pub dispatches: u64,
    /// Queue submissions since the device was made.
    pub submissions: u64,
    /// Bind groups created (a dispatch whose pipeline and buffer ranges were
    /// seen before reuses its bind group).
    pub bind_groups: u64,
}

#[derive(Default)]
pub(crate) struct Recorder {
    pub(crate) pending: Vec<Dispatch>,
    pub(crate) counters: Counters,
    /// Submissions not yet known to be finished, oldest first.
    pub(crate) in_flight: std::collections::VecDeque<wgpu::SubmissionIndex>,
    /// Incremented at each submission; buffers remember the epoch that last
    /// bound them.
    pub(crate) epoch: u64,
    /// Bind groups of earlier dispatches.
    pub(crate) cache: crate::engine::BindGroupCache,
}

/// Lays out parameter blocks back to back, each at a multiple of `align`
/// bytes. Returns the arena and each block's offset.
pub fn pack_params<'a>(
    blocks: impl IntoIterator<Item = &'a [u8]>,
    align: u64,
) -> (Vec<u8>, Vec<u64>) {
    let align = align.max(16) as usize;
    let mut arena = Vec::new();
    let mut offsets = Vec::new();
    for b in blocks {
        arena.resize(arena.len().div_ceil(align) * align, 0);
        offsets.push(arena.len() as u64);
        arena.extend_from_slice(b);
    }
    arena.resize(arena.len().div_ceil(16).max(1) * 16, 0);
    (arena, offsets)
}

/// Workgroup count covering `n` items with `per_group` items per workgroup,
/// capped at the adapter's per-dimension limit (kernels loop over the rest).
pub fn groups_for(n: usize, per_group: usize, max_per_dim: u32) -> u32 {
    (n.div_ceil(per_group.max(1)) as u64).clamp(1, max_per_dim as u64) as u32
}

impl Device {
    /// Records the entry point `key` (whose generated bindings are `B`) over
    /// `bindings`, with `params` as its uniform struct. A binding over the
    /// adapter's storage binding limit is a `TooLarge` error naming the
    /// kernel; an offset off the adapter's alignment is an `InvalidArgument`.
    pub(crate) fn launch<'a, B: Bindings<'a>>(
        &self,
        key: &KernelKey,
        params: &B::Params,
        bindings: &B,
        workgroups: [u32; 3],
    ) -> Result<()> {
        if key.shader != B::SHADER || key.entry != B::ENTRY {
            return Err(Error::Shader {
                shader: key.shader.to_string(),
                what: format!(
                    "{}: launched with the bindings of {}::{}",
                    key.entry,
                    B::SHADER,
                    B::ENTRY
                ),
            });
        }
        let params = bytemuck::bytes_of(params);
        let list = bindings.list();
        let limits = &self.shared.info.limits;
        let most = limits.max_storage_buffers_per_shader_stage as usize;
        if B::ACCESS.len() > most {
            return Err(Error::InvalidArgument {
                op: key.entry,
                what: format!(
                    "the kernel binds {} storage buffers; this adapter allows {most} per stage",
                    B::ACCESS.len()
                ),
            });
        }
        let (limit, align) = (
            limits.max_storage_buffer_binding_size,
            limits.min_storage_buffer_offset_alignment as u64,
        );
        for (b, name) in list.iter().zip(B::NAMES) {
            if b.bytes > limit {
                return Err(Error::TooLarge {
                    op: key.entry,
                    shape: vec![b.bytes.div_ceil(4) as usize],
                    bytes: b.bytes,
                    limit_name: "max_storage_buffer_binding_size (one binding)",
                    limit,
                });
            }
            if !b.offset.is_multiple_of(align) {
                return Err(Error::InvalidArgument {
                    op: key.entry,
                    what: format!(
                        "binding {name} at offset {} is not a multiple of {align}",
                        b.offset
                    ),
                });
            }
        }
        let kernel = self
            .shared
            .pipelines
            .get(&self.shared.device, key, B::ACCESS)?;
        let mut params = params.to_vec();
        params.resize(params.len().div_ceil(16).max(1) * 16, 0);
        let d = Dispatch {
            kernel,
            params,
            bindings: list
                .iter()
                .map(|b| Binding {
                    buffer: b.buffer.raw().clone(),
                    offset: b.offset,
                    bytes: b.bytes.div_ceil(4).max(1) * 4,
                })
                .collect(),
            workgroups,
        };
        let full = {
            let mut r = self.shared.recorder.lock().map_err(poisoned)?;
            for b in &list {
                b.buffer.mark_used(r.epoch);
            }
            r.pending.push(d);
            r.counters.dispatches += 1;
            r.pending.len() >= MAX_PENDING_DISPATCHES
        };
        if full {
            self.flush()?;
        }
        Ok(())
    }

    /// Dispatch and submission counters.
    pub fn counters(&self) -> Counters {
        self.shared
            .recorder
            .lock()
            .map(|r| r.counters)
            .unwrap_or_default()
    }

    /// Submits the open recording first if it uses `buffer`, so that a
    /// `queue.write_buffer` into it (which runs before the next submission)
    /// cannot overwrite data the recording still has to read.
    pub(crate) fn before_upload(&self, buffer: &GpuBuffer) -> Result<()> {
        let used = {
            let r = self.shared.recorder.lock().map_err(poisoned)?;
            !r.pending.is_empty() && buffer.used_in(r.epoch)
        };
        if used {
            self.flush()?;
        }
        Ok(())
    }

    /// The epoch of the open recording, when it has dispatches.
    pub(crate) fn open_epoch(&self) -> Result<Option<u64>> {
        let r = self.shared.recorder.lock().map_err(poisoned)?;
        Ok((!r.pending.is_empty()).then_some(r.epoch))
    }

    /// Number of dispatches recorded and not yet submitted.
    pub fn pending_dispatches(&self) -> usize {
        self.shared
            .recorder
            .lock()
            .map(|r| r.pending.len())
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_are_packed_at_aligned_offsets() {
        let a = [1u8; 20];
        let b = [2u8; 16];
        let c = [3u8; 48];
        let (arena, offs) = pack_params([&a[..], &b[..], &c[..]], 256);
        assert_eq!(offs, vec![0, 256, 512]);
        assert_eq!(arena.len(), 512 + 48);
        assert_eq!(&arena[256..272], &b);
        assert!(arena[20..256].iter().all(|&x| x == 0));
        let (arena, offs) = pack_params(std::iter::empty(), 256);
        assert!(offs.is_empty());
        assert_eq!(arena.len(), 16);
    }

    #[test]
    fn group_counts_cover_and_respect_the_limit() {
        assert_eq!(groups_for(0, 256, 65535), 1);
        assert_eq!(groups_for(256, 256, 65535), 1);
        assert_eq!(groups_for(257, 256, 65535), 2);
        assert_eq!(groups_for(1 << 30, 256, 65535), 65535);
    }
}
