//! Size-class buffer pool.
//!
//! A buffer goes back to the pool as soon as its last handle drops, even
//! while recorded or in-flight work still uses it. That is safe because all
//! GPU work runs in recording order on one queue (wgpu places the barriers),
//! so a later user of the buffer runs after the earlier ones. The one write
//! that does not follow recording order, `queue.write_buffer` for uploads, is
//! guarded by the buffer's recording epoch (see `tensor.rs`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

/// Allocation counters, from [`crate::Device::memory_stats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryStats {
    /// Bytes in buffers that are handed out (size-class bytes).
    pub bytes_live: u64,
    /// Highest `bytes_live` seen.
    pub bytes_peak: u64,
    /// Bytes in free buffers kept for reuse.
    pub bytes_pooled: u64,
    /// Buffers created from the driver.
    pub allocations: u64,
    /// Requests served from the pool without a driver allocation.
    pub reuses: u64,
}

/// Rounds `bytes` up to its size class: multiples of 256 bytes up to 4 KiB,
/// then four classes per power of two (at most ~19% slack).
pub fn size_class(bytes: u64) -> u64 {
    let bytes = bytes.max(4);
    if bytes <= 4096 {
        return bytes.div_ceil(256) * 256;
    }
    let top = 63 - (bytes - 1).leading_zeros() as u64; // 2^top < bytes <= 2^(top+1)
    let step = 1u64 << (top - 2);
    bytes.div_ceil(step) * step
}

#[derive(Default)]
struct Inner {
    /// Free buffers with the epoch that last used them.
    free: HashMap<(u64, wgpu::BufferUsages), Vec<(wgpu::Buffer, u64)>>,
    stats: MemoryStats,
}

/// The pool itself; owned by the device.
#[derive(Default)]
pub(crate) struct Pool {
    inner: Mutex<Inner>,
}

/// A pooled buffer handle; returns the buffer to the pool on drop.
#[derive(Debug)]
pub struct GpuBuffer {
    buffer: Option<wgpu::Buffer>,
    size: u64,
    pool: Weak<Pool>,
    /// The recording epoch that last bound this buffer (`u64::MAX`: none).
    epoch: AtomicU64,
}

impl GpuBuffer {
    /// The wgpu buffer.
    pub fn raw(&self) -> &wgpu::Buffer {
        // Only `Drop` takes it out.
        self.buffer.as_ref().expect("buffer present until drop")
    }

    /// A buffer outside the pool (dropped, not pooled, with its handle).
    pub(crate) fn standalone(buffer: wgpu::Buffer, size: u64) -> Self {
        GpuBuffer {
            buffer: Some(buffer),
            size,
            pool: Weak::new(),
            epoch: AtomicU64::new(u64::MAX),
        }
    }

    pub(crate) fn mark_used(&self, epoch: u64) {
        self.epoch.store(epoch, Ordering::Relaxed);
    }

    pub(crate) fn used_in(&self, epoch: u64) -> bool {
        self.epoch.load(Ordering::Relaxed) == epoch
    }
}

impl Drop for GpuBuffer {
    fn drop(&mut self) {
        let (Some(buffer), Some(pool)) = (self.buffer.take(), self.pool.upgrade()) else {
            return;
        };
        let Ok(mut inner) = pool.inner.lock() else {
            return;
        };
        inner.stats.bytes_live -= self.size;
        inner.stats.bytes_pooled += self.size;
        inner
            .free
            .entry((self.size, buffer.usage()))
            .or_default()
            .push((buffer, self.epoch.load(Ordering::Relaxed)));
    }
}

impl Pool {
    /// Returns a buffer of at least `bytes` with `usage`, reusing a free one
    /// of the same class when there is one (but none last bound in epoch
    /// `avoid`).
    pub(crate) fn alloc(
        self: &Arc<Self>,
        device: &wgpu::Device,
        label: &str,
        bytes: u64,
        usage: wgpu::BufferUsages,
        avoid: Option<u64>,
    ) -> Arc<GpuBuffer> {
        let size = size_class(bytes);
        let mut inner = match self.inner.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let reused = inner.free.get_mut(&(size, usage)).and_then(|list| {
            let i = list.iter().rposition(|&(_, e)| Some(e) != avoid)?;
            Some(list.swap_remove(i))
        });
        let (buffer, epoch) = match reused {
            Some(b) => {
                inner.stats.reuses += 1;
                inner.stats.bytes_pooled -= size;
                b
            }
            None => {
                inner.stats.allocations += 1;
                let b = device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some(label),
                    size,
                    usage,
                    mapped_at_creation: false,
                });
                (b, u64::MAX)
            }
        };
        inner.stats.bytes_live += size;
        inner.stats.bytes_peak = inner.stats.bytes_peak.max(inner.stats.bytes_live);
        Arc::new(GpuBuffer {
            buffer: Some(buffer),
            size,
            pool: Arc::downgrade(self),
            epoch: AtomicU64::new(epoch),
        })
    }

    pub(crate) fn stats(&self) -> MemoryStats {
        self.inner.lock().map(|i| i.stats).unwrap_or_default()
    }

    /// Frees every pooled buffer back to the driver.
    pub(crate) fn trim(&self) {
        if let Ok(mut inner) = self.inner.lock() {
            // Dropped, not destroyed: recorded or in-flight work may still
            // hold a clone, and wgpu frees the memory once that is done.
            inner.free.clear();
            inner.stats.bytes_pooled = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::size_class;

    #[test]
    fn size_classes_cover_the_request_with_bounded_slack() {
        for bytes in [
            1u64,
            4,
            255,
            256,
            257,
            4096,
            4097,
            5000,
            65537,
            1 << 20,
            (1 << 20) + 1,
            123_456_789,
        ] {
            let c = size_class(bytes);
            assert!(c >= bytes, "{bytes} -> {c}");
            assert_eq!(c % 4, 0);
            if bytes > 4096 {
                assert!((c as f64) <= bytes as f64 * 1.25, "{bytes} -> {c}");
            }
        }
        assert_eq!(size_class(3000), 3072);
        assert_eq!(size_class(1 << 20), 1 << 20);
    }
}
