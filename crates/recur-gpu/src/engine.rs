//! The engine: encodes the open recording into one compute pass, submits
//! it, and reads buffers back.
//!
//! Two things make encoding cheap on the CPU. Parameters go into one
//! persistent uniform buffer, each dispatch binding its block at a dynamic
//! offset, so a dispatch's bind group depends only on its pipeline and its
//! storage ranges; and those bind groups are cached, so a recurrence that
//! launches the same kernel over the same buffers for T steps builds one
//! bind group, not T. Every readback and [`Device::sync`] also copies the
//! device's index-error words (written by kernels that meet an out-of-range
//! id) and turns them into an error.

use std::collections::HashMap;
use std::num::NonZeroU64;
use std::sync::Arc;

use crate::device::{Device, Raised};
use crate::error::{Error, Result};
use crate::kernel::{poisoned, Kernel};
use crate::pool::GpuBuffer;
use crate::record::{pack_params, Binding, MAX_IN_FLIGHT, MAX_PENDING_DISPATCHES, PARAMS_BLOCK};

/// Cached bind groups past which the cache starts over.
const MAX_BIND_GROUPS: usize = 4_096;

/// Ops that check indices on the device, by the code their kernels write.
pub(crate) const INDEX_CHECKED_OPS: [&str; 3] = ["", "embedding", "cross_entropy"];

/// Bytes of the index-error words: (flag, op code, index, bound).
const INDEX_ERROR_BYTES: u64 = 16;

/// Bind groups by pipeline and storage ranges.
#[derive(Default)]
pub(crate) struct BindGroupCache {
    map: HashMap<(usize, Vec<Binding>), wgpu::BindGroup>,
}

impl BindGroupCache {
    /// Forgets every bind group (and the buffers they hold).
    pub(crate) fn clear(&mut self) {
        self.map.clear();
    }
}

/// Device-lifetime buffers of the engine.
pub(crate) struct EngineBuffers {
    /// The parameter blocks of one submission.
    params: wgpu::Buffer,
    /// (flag, op code, index, bound), zero when no kernel met a bad index.
    pub(crate) index_errors: Arc<GpuBuffer>,
    /// Whether bind groups are cached ([`crate::DeviceOptions`]).
    cache: bool,
}

impl EngineBuffers {
    pub(crate) fn new(device: &wgpu::Device, limits: &wgpu::Limits, cache: bool) -> Self {
        let align = (limits.min_uniform_buffer_offset_alignment as u64).max(PARAMS_BLOCK);
        let params = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("recur::params"),
            size: MAX_PENDING_DISPATCHES as u64 * align + PARAMS_BLOCK,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let errors = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("recur::index_errors"),
            size: INDEX_ERROR_BYTES,
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        Self {
            params,
            index_errors: Arc::new(GpuBuffer::standalone(errors, INDEX_ERROR_BYTES)),
            cache,
        }
    }
}

/// Blocking waits, for native callers (a browser cannot block: on wasm32
/// only [`Device::sync_async`] and [`Device::sync_timed_async`] exist).
#[cfg(not(target_arch = "wasm32"))]
impl Device {
    /// Submits the open recording and waits until the GPU has finished all
    /// work; fails with [`Error::IndexOutOfRange`] if a kernel met an
    /// out-of-range index since the last readback.
    pub fn sync(&self) -> Result<()> {
        pollster::block_on(self.sync_async())
    }

    /// Like [`Device::sync`], but also returns the GPU time of the submitted
    /// pass when the adapter has TIMESTAMP_QUERY (`None` otherwise).
    pub fn sync_timed(&self) -> Result<Option<std::time::Duration>> {
        pollster::block_on(self.sync_timed_async())
    }
}

/// How one pass's GPU time is captured (timestamp queries).
struct Timestamps {
    set: wgpu::QuerySet,
    resolve: wgpu::Buffer,
}

impl Device {
    /// Submits the open recording without waiting for it.
    pub fn flush(&self) -> Result<()> {
        self.submit(|_| {}, None)
    }

    /// Submits the open recording and completes once the GPU has finished
    /// all work; fails with [`Error::IndexOutOfRange`] if a kernel met an
    /// out-of-range index since the last readback, and with the error wgpu
    /// raised (validation, out of memory, device lost) if it raised one.
    pub async fn sync_async(&self) -> Result<()> {
        self.submit_and_read(&[], None).await.map(|_| ())
    }

    /// Like [`Device::sync_async`], but also returns the GPU time of the
    /// submitted pass when the adapter has TIMESTAMP_QUERY (`None` otherwise).
    pub async fn sync_timed_async(&self) -> Result<Option<std::time::Duration>> {
        if !self.info().has(wgpu::Features::TIMESTAMP_QUERY) {
            self.sync_async().await?;
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
        let out = self
            .submit_and_read(&[(&ts.resolve, 16)], Some(&ts))
            .await?;
        let t: Vec<u64> = bytemuck::pod_collect_to_vec(&out[0]);
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
        // The gravest kind names the error; its messages are joined.
        let (mut lost, mut oom, mut invalid) = (Vec::new(), Vec::new(), Vec::new());
        for r in errs.drain(..) {
            match r {
                Raised::Lost(m) => lost.push(m),
                Raised::OutOfMemory(m) => oom.push(m),
                Raised::Validation(m) => invalid.push(m),
            }
        }
        let op = op.to_string();
        Err(if !lost.is_empty() {
            Error::DeviceLost(lost.join("; "))
        } else if !oom.is_empty() {
            Error::OutOfMemory {
                op,
                message: oom.join("; "),
            }
        } else {
            Error::Validation {
                op,
                message: invalid.join("; "),
            }
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
        let eng = &sh.engine;
        let scope = crate::kernel::ErrorScope::push(&sh.device);
        // Ordered after the work already submitted (which read the previous
        // blocks) and before this submission's dispatches.
        sh.queue.write_buffer(&eng.params, 0, &arena);
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
            for (d, off) in pending.into_iter().zip(&offsets) {
                let key = (Arc::as_ptr(&d.kernel) as usize, d.bindings);
                if !eng.cache || rec.cache.map.len() >= MAX_BIND_GROUPS {
                    rec.cache.map.clear();
                }
                rec.counters.bind_groups += !rec.cache.map.contains_key(&key) as u64;
                let bind = rec
                    .cache
                    .map
                    .entry(key)
                    .or_insert_with_key(|(_, b)| self.bind_group(&d.kernel, b));
                pass.set_pipeline(&d.kernel.pipeline);
                pass.set_bind_group(0, &*bind, &[*off as u32]);
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
        // A browser queues work itself (and its poll is a no-op).
        #[cfg(not(target_arch = "wasm32"))]
        if let Some(oldest) = oldest {
            sh.device
                .poll(wgpu::PollType::Wait {
                    submission_index: Some(oldest),
                    timeout: None,
                })
                .map_err(|e| Error::DeviceLost(e.to_string()))?;
        }
        #[cfg(target_arch = "wasm32")]
        let _ = oldest;
        let err = scope.pop("submit");
        // Let wgpu retire finished submissions without blocking.
        let _ = sh.device.poll(wgpu::PollType::Poll);
        err
    }

    fn bind_group(&self, kernel: &Kernel, bindings: &[Binding]) -> wgpu::BindGroup {
        let sh = &self.shared;
        let mut entries = vec![wgpu::BindGroupEntry {
            binding: 0,
            resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                buffer: &sh.engine.params,
                offset: 0,
                size: NonZeroU64::new(PARAMS_BLOCK),
            }),
        }];
        for (i, b) in bindings.iter().enumerate() {
            entries.push(wgpu::BindGroupEntry {
                binding: i as u32 + 1,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: &b.buffer,
                    offset: b.offset,
                    size: NonZeroU64::new(b.bytes.min(b.buffer.size().saturating_sub(b.offset))),
                }),
            });
        }
        sh.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(kernel.key.entry),
            layout: &kernel.layout,
            entries: &entries,
        })
    }

    /// The index-error words, for kernels that check indices.
    pub(crate) fn index_errors(&self) -> crate::record::Bind<'_> {
        crate::record::Bind {
            buffer: &self.shared.engine.index_errors,
            offset: 0,
            bytes: INDEX_ERROR_BYTES,
        }
    }

    /// Forgets cached bind groups (they keep their buffers alive).
    pub(crate) fn clear_bind_groups(&self) {
        if let Ok(mut r) = self.shared.recorder.lock() {
            r.cache.clear();
        }
    }

    fn staging(&self, bytes: u64) -> Arc<GpuBuffer> {
        self.shared.pool.alloc(
            &self.shared.device,
            "recur::readback",
            bytes,
            wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            None,
        )
    }

    /// Submits the recording plus a copy of `bytes` of `src` into a staging
    /// buffer, and reads it back.
    pub(crate) async fn read_buffer(&self, src: &Arc<GpuBuffer>, bytes: u64) -> Result<Vec<u8>> {
        let mut out = self.submit_and_read(&[(src.raw(), bytes)], None).await?;
        Ok(out.swap_remove(0))
    }

    /// Submits the recording, then copies each `(buffer, bytes)` of `reads`
    /// and the index-error words into one staging buffer (clearing the
    /// words), waits, and returns each read's bytes, or the index error a
    /// kernel recorded.
    async fn submit_and_read(
        &self,
        reads: &[(&wgpu::Buffer, u64)],
        ts: Option<&Timestamps>,
    ) -> Result<Vec<Vec<u8>>> {
        let mut at = Vec::new();
        let mut size = 0;
        for &(_, bytes) in reads {
            at.push(size);
            size += bytes.div_ceil(8).max(1) * 8;
        }
        let errors_at = size;
        size += INDEX_ERROR_BYTES;
        let staging = self.staging(size);
        let errors = self.shared.engine.index_errors.raw();
        self.submit(
            |enc| {
                if let Some(t) = ts {
                    enc.resolve_query_set(&t.set, 0..2, &t.resolve, 0);
                }
                for (&(src, bytes), &off) in reads.iter().zip(&at) {
                    let n = bytes.div_ceil(4) * 4;
                    if n > 0 {
                        enc.copy_buffer_to_buffer(src, 0, staging.raw(), off, n);
                    }
                }
                enc.copy_buffer_to_buffer(errors, 0, staging.raw(), errors_at, INDEX_ERROR_BYTES);
                enc.clear_buffer(errors, 0, None);
            },
            ts,
        )?;
        let all = self.map_read(&staging, size).await?;
        let words: Vec<u32> =
            bytemuck::pod_collect_to_vec(&all[errors_at as usize..(errors_at + 16) as usize]);
        if words[0] != 0 {
            return Err(Error::IndexOutOfRange {
                op: INDEX_CHECKED_OPS
                    .get(words[1] as usize)
                    .copied()
                    .unwrap_or("unknown"),
                index: words[2],
                bound: words[3],
            });
        }
        Ok(reads
            .iter()
            .zip(&at)
            .map(|(&(_, bytes), &off)| all[off as usize..(off + bytes) as usize].to_vec())
            .collect())
    }

    async fn map_read(&self, staging: &Arc<GpuBuffer>, size: u64) -> Result<Vec<u8>> {
        let (tx, rx) = futures::channel::oneshot::channel();
        staging
            .raw()
            .map_async(wgpu::MapMode::Read, 0..size, move |r| {
                let _ = tx.send(r);
            });
        // Native backends make progress only when polled; on the web this is a no-op.
        let waited = self.wait();
        let mapped = match rx.await {
            Err(_) => Err("map callback dropped".to_string()),
            Ok(r) => r.map_err(|e| e.to_string()),
        };
        let out = mapped.and_then(|()| {
            let view = staging
                .raw()
                .get_mapped_range(0..size)
                .map_err(|e| e.to_string())?;
            Ok(view.to_vec())
        });
        // Unmapped on every path: the staging buffer goes back to the pool.
        staging.raw().unmap();
        waited?;
        // A browser delivers errors as events, which may land only now.
        self.take_uncaptured("sync")?;
        out.map_err(|message| Error::Readback {
            op: "to_vec",
            message,
        })
    }
}
