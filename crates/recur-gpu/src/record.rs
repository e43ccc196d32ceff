//! Recording and submission.
//!
//! Ops append [`Dispatch`]es (plain data: a pipeline, its parameter bytes, its
//! buffers and a workgroup count) to the device's open recording. Nothing is
//! encoded or waited on until a readback, [`Device::sync`] or
//! [`Device::flush`]; then all pending dispatches go out in one compute pass
//! and one submission. A dispatch holds its own clones of the wgpu buffers,
//! so a tensor may be dropped (and its pooled buffer reused by a later op)
//! right after the op that reads it is recorded.

use std::num::NonZeroU64;
use std::sync::Arc;

use crate::device::Device;
use crate::error::{Error, Result};
use crate::kernel::{poisoned, Access, Kernel, KernelKey};
use crate::pool::GpuBuffer;

/// Pending dispatches past which the recording is submitted without waiting.
pub const MAX_PENDING_DISPATCHES: usize = 1_024;

/// Submissions that may be queued on the GPU at once: a program that records
/// without ever reading back (a training loop that logs nothing) waits for
/// the oldest beyond this, so queued work and its memory stay bounded.
pub const MAX_IN_FLIGHT: usize = 2;

/// One storage binding of a dispatch: a buffer and the byte range bound.
#[derive(Clone, Debug)]
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
}

#[derive(Default)]
pub(crate) struct Recorder {
    pending: Vec<Dispatch>,
    counters: Counters,
    /// Submissions not yet known to be finished, oldest first.
    in_flight: std::collections::VecDeque<wgpu::SubmissionIndex>,
    /// Incremented at each submission; buffers remember the epoch that last
    /// bound them.
    epoch: u64,
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

/// How one pass's GPU time is captured (timestamp queries).
struct Timestamps {
    set: wgpu::QuerySet,
    resolve: wgpu::Buffer,
}

impl Device {
    /// Records a dispatch of `key` over `buffers` (each with its access mode)
    /// with `params` as the uniform struct.
    pub(crate) fn dispatch(
        &self,
        key: &KernelKey,
        params: &[u8],
        buffers: &[(&Arc<GpuBuffer>, u64, Access)],
        workgroups: [u32; 3],
    ) -> Result<()> {
        let ranges: Vec<_> = buffers.iter().map(|&(b, n, a)| (b, 0, n, a)).collect();
        self.dispatch_ranges(key, params, &ranges, workgroups)
    }

    /// [`Device::dispatch`] binding `bytes` from `offset` of each buffer: how
    /// kernels work on tensors larger than one storage binding, a slice at a
    /// time. A range over the binding limit is a `TooLarge` error naming the
    /// kernel; an offset off the adapter's alignment is an `InvalidArgument`.
    pub(crate) fn dispatch_ranges(
        &self,
        key: &KernelKey,
        params: &[u8],
        buffers: &[(&Arc<GpuBuffer>, u64, u64, Access)],
        workgroups: [u32; 3],
    ) -> Result<()> {
        let limits = &self.shared.info.limits;
        let (limit, align) = (
            limits.max_storage_buffer_binding_size,
            limits.min_storage_buffer_offset_alignment as u64,
        );
        for &(_, offset, bytes, _) in buffers {
            if bytes > limit {
                return Err(Error::TooLarge {
                    op: key.entry,
                    shape: vec![bytes.div_ceil(4) as usize],
                    bytes,
                    limit_name: "max_storage_buffer_binding_size (one binding)",
                    limit,
                });
            }
            if !offset.is_multiple_of(align) {
                return Err(Error::InvalidArgument {
                    op: key.entry,
                    what: format!("binding offset {offset} is not a multiple of {align}"),
                });
            }
        }
        let access: Vec<Access> = buffers.iter().map(|b| b.3).collect();
        let kernel = self
            .shared
            .pipelines
            .get(&self.shared.device, key, &access)?;
        let mut params = params.to_vec();
        params.resize(params.len().div_ceil(16).max(1) * 16, 0);
        let d = Dispatch {
            kernel,
            params,
            bindings: buffers
                .iter()
                .map(|(b, offset, bytes, _)| Binding {
                    buffer: b.raw().clone(),
                    offset: *offset,
                    bytes: bytes.div_ceil(4).max(1) * 4,
                })
                .collect(),
            workgroups,
        };
        let full = {
            let mut r = self.shared.recorder.lock().map_err(poisoned)?;
            for (b, ..) in buffers {
                b.mark_used(r.epoch);
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

    /// Submits the open recording without waiting for it.
    pub fn flush(&self) -> Result<()> {
        self.submit(|_| {}, None).map(|_| ())
    }

    /// Submits the open recording and waits until the GPU has finished all work.
    pub fn sync(&self) -> Result<()> {
        self.submit(|_| {}, None)?;
        self.wait()
    }

    /// Like [`Device::sync`], but also returns the GPU time of the submitted
    /// pass when the adapter has TIMESTAMP_QUERY (`None` otherwise).
    pub fn sync_timed(&self) -> Result<Option<std::time::Duration>> {
        if !self.info().has(wgpu::Features::TIMESTAMP_QUERY) {
            self.sync()?;
            return Ok(None);
        }
        let dev = &self.shared.device;
        let ts = Timestamps {
            set: dev.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("recur::timestamps"),
                ty: wgpu::QueryType::Timestamp,
                count: 2,
            }),
            resolve: dev.create_buffer(&wgpu::BufferDescriptor {
                label: Some("recur::timestamps::resolve"),
                size: 16,
                usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            }),
        };
        let staging = self.staging(16)?;
        self.submit(
            |enc| {
                enc.resolve_query_set(&ts.set, 0..2, &ts.resolve, 0);
                enc.copy_buffer_to_buffer(&ts.resolve, 0, staging.raw(), 0, 16);
            },
            Some(&ts),
        )?;
        let bytes = pollster::block_on(self.map_read(&staging, 16))?;
        let t: &[u64] = bytemuck::cast_slice(&bytes);
        let ns = t[1].saturating_sub(t[0]) as f64 * self.shared.queue.get_timestamp_period() as f64;
        Ok(Some(std::time::Duration::from_nanos(ns as u64)))
    }

    /// Blocks until all submitted work is done, then reports any error wgpu
    /// raised outside an error scope.
    pub(crate) fn wait(&self) -> Result<()> {
        self.shared
            .device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::DeviceLost(e.to_string()))?;
        self.take_uncaptured("sync")
    }

    fn take_uncaptured(&self, op: &str) -> Result<()> {
        let mut errs = self.shared.uncaptured.lock().map_err(poisoned)?;
        if errs.is_empty() {
            return Ok(());
        }
        let message = errs.join("; ");
        errs.clear();
        Err(Error::Validation {
            op: op.to_string(),
            message,
        })
    }

    /// Encodes every pending dispatch into one compute pass, then `extra`
    /// (copies for a readback), and submits it all as one command buffer.
    fn submit(
        &self,
        extra: impl FnOnce(&mut wgpu::CommandEncoder),
        ts: Option<&Timestamps>,
    ) -> Result<()> {
        let sh = &self.shared;
        let mut rec = sh.recorder.lock().map_err(poisoned)?;
        let pending = std::mem::take(&mut rec.pending);
        let align = sh.info.limits.min_uniform_buffer_offset_alignment as u64;
        let (arena, offsets) = pack_params(pending.iter().map(|d| d.params.as_slice()), align);
        let params = sh.pool.alloc(
            &sh.device,
            "recur::params",
            arena.len() as u64,
            wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            None,
        );
        let scope = sh.device.push_error_scope(wgpu::ErrorFilter::Validation);
        sh.queue.write_buffer(params.raw(), 0, &arena);
        let mut enc = sh
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("recur::recording"),
            });
        if !pending.is_empty() || ts.is_some() {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("recur::pass"),
                timestamp_writes: ts.map(|t| wgpu::ComputePassTimestampWrites {
                    query_set: &t.set,
                    beginning_of_pass_write_index: Some(0),
                    end_of_pass_write_index: Some(1),
                }),
            });
            for (d, off) in pending.iter().zip(&offsets) {
                let mut entries = vec![wgpu::BindGroupEntry {
                    binding: 0,
                    resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                        buffer: params.raw(),
                        offset: *off,
                        size: NonZeroU64::new(d.params.len() as u64),
                    }),
                }];
                for (i, b) in d.bindings.iter().enumerate() {
                    entries.push(wgpu::BindGroupEntry {
                        binding: i as u32 + 1,
                        resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                            buffer: &b.buffer,
                            offset: b.offset,
                            size: NonZeroU64::new(
                                b.bytes.min(b.buffer.size().saturating_sub(b.offset)),
                            ),
                        }),
                    });
                }
                let bind = sh.device.create_bind_group(&wgpu::BindGroupDescriptor {
                    label: Some(d.kernel.key.entry),
                    layout: &d.kernel.layout,
                    entries: &entries,
                });
                pass.set_pipeline(&d.kernel.pipeline);
                pass.set_bind_group(0, &bind, &[]);
                let [x, y, z] = d.workgroups;
                pass.dispatch_workgroups(x, y, z);
            }
        }
        extra(&mut enc);
        let index = sh.queue.submit([enc.finish()]);
        rec.counters.submissions += 1;
        rec.epoch += 1;
        rec.in_flight.push_back(index);
        let oldest = if rec.in_flight.len() > MAX_IN_FLIGHT {
            rec.in_flight.pop_front()
        } else {
            None
        };
        drop(rec);
        if let Some(oldest) = oldest {
            sh.device
                .poll(wgpu::PollType::Wait {
                    submission_index: Some(oldest),
                    timeout: None,
                })
                .map_err(|e| Error::DeviceLost(e.to_string()))?;
        }
        drop(pending);
        drop(params);
        let err = pollster::block_on(scope.pop());
        // Let wgpu retire finished submissions without blocking.
        let _ = sh.device.poll(wgpu::PollType::Poll);
        match err {
            Some(e) => Err(Error::from_wgpu("submit", e)),
            None => Ok(()),
        }
    }

    fn staging(&self, bytes: u64) -> Result<Arc<GpuBuffer>> {
        Ok(self.shared.pool.alloc(
            &self.shared.device,
            "recur::readback",
            bytes,
            wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            None,
        ))
    }

    /// Submits the recording plus a copy of `bytes` of `src` into a staging
    /// buffer, and reads it back.
    pub(crate) async fn read_buffer(&self, src: &Arc<GpuBuffer>, bytes: u64) -> Result<Vec<u8>> {
        let size = bytes.div_ceil(4).max(1) * 4;
        let staging = self.staging(size)?;
        self.submit(
            |enc| enc.copy_buffer_to_buffer(src.raw(), 0, staging.raw(), 0, size),
            None,
        )?;
        let mut out = self.map_read(&staging, size).await?;
        out.truncate(bytes as usize);
        Ok(out)
    }

    async fn map_read(&self, staging: &Arc<GpuBuffer>, size: u64) -> Result<Vec<u8>> {
        let (tx, rx) = futures::channel::oneshot::channel();
        staging
            .raw()
            .map_async(wgpu::MapMode::Read, 0..size, move |r| {
                let _ = tx.send(r);
            });
        // Native backends make progress only when polled; on the web this is a no-op.
        self.wait()?;
        rx.await
            .map_err(|_| Error::Readback {
                op: "to_vec",
                message: "map callback dropped".into(),
            })?
            .map_err(|e| Error::Readback {
                op: "to_vec",
                message: e.to_string(),
            })?;
        let out = {
            let view = staging
                .raw()
                .get_mapped_range(0..size)
                .map_err(|e| Error::Readback {
                    op: "to_vec",
                    message: e.to_string(),
                })?;
            view.to_vec()
        };
        staging.raw().unmap();
        Ok(out)
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
