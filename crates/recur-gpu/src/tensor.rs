//! Tensors: a shape, a dtype and contiguous storage in a pooled GPU buffer.

use std::sync::{Arc, Weak};

use crate::device::{Device, Shared};
use crate::error::{Error, Result};
use crate::pool::GpuBuffer;
use crate::rng::Rng;

/// Element type of a tensor's storage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DType {
    /// 32-bit float.
    F32,
    /// 16-bit float storage (pairs packed in u32 words; math is f32).
    F16,
    /// 32-bit unsigned integer (token ids, indices).
    U32,
}

impl DType {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::F32 | DType::U32 => 4,
            DType::F16 => 2,
        }
    }
}

/// A dense, contiguous, row-major tensor on a [`Device`].
///
/// Cloning is cheap and shares storage. Ops never write into an existing
/// tensor's storage unless their name says so (`_into`, `_inplace`).
#[derive(Clone)]
pub struct Tensor {
    shape: Vec<usize>,
    dtype: DType,
    storage: Arc<GpuBuffer>,
    device: Weak<Shared>,
}

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tensor({:?}, {:?})", self.shape, self.dtype)
    }
}

/// Number of elements in `shape`.
pub fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

impl Device {
    /// Allocates uninitialised storage for `shape`, checking the adapter's limits.
    pub(crate) fn alloc(&self, op: &'static str, shape: &[usize], dtype: DType) -> Result<Tensor> {
        self.alloc_avoiding(op, shape, dtype, None)
    }

    /// [`Device::alloc`], not reusing a pooled buffer last bound in
    /// recording epoch `avoid` (so an upload need not submit that recording).
    fn alloc_avoiding(
        &self,
        op: &'static str,
        shape: &[usize],
        dtype: DType,
        avoid: Option<u64>,
    ) -> Result<Tensor> {
        let n = shape
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .ok_or_else(|| Error::InvalidArgument {
                op,
                what: format!("shape {shape:?} overflows usize"),
            })?;
        let bytes = (n as u64).saturating_mul(dtype.size() as u64);
        let limits = &self.shared.info.limits;
        // A tensor may be larger than one storage binding (up to the
        // adapter's buffer size): kernels that can work a slice at a time
        // (fill, the scans) split it, the others refuse it when recorded.
        let limit = limits.max_buffer_size;
        if crate::pool::size_class(bytes) > limit {
            return Err(Error::TooLarge {
                op,
                shape: shape.to_vec(),
                bytes,
                limit_name: "max_buffer_size",
                limit,
            });
        }
        let storage = self.shared.pool.alloc(
            &self.shared.device,
            op,
            bytes,
            wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
            avoid,
        );
        Ok(Tensor {
            shape: shape.to_vec(),
            dtype,
            storage,
            device: self.downgrade(),
        })
    }

    fn upload(
        &self,
        op: &'static str,
        shape: &[usize],
        dtype: DType,
        bytes: &[u8],
    ) -> Result<Tensor> {
        // A buffer the open recording reads would have to be submitted
        // before the write; take another one instead.
        let t = self.alloc_avoiding(op, shape, dtype, self.open_epoch()?)?;
        // write_buffer needs a multiple of 4 bytes (odd-length f16 tensors).
        let mut padded;
        let data = if bytes.len().is_multiple_of(4) {
            bytes
        } else {
            padded = bytes.to_vec();
            padded.resize(bytes.len().div_ceil(4) * 4, 0);
            &padded
        };
        if !data.is_empty() {
            self.before_upload(&t.storage)?;
            self.shared.queue.write_buffer(t.storage.raw(), 0, data);
        }
        Ok(t)
    }
}

fn check_len(op: &'static str, len: usize, shape: &[usize]) -> Result<()> {
    let n = numel(shape);
    if len == n {
        Ok(())
    } else {
        Err(Error::LengthMismatch {
            op,
            len,
            shape: shape.to_vec(),
            numel: n,
        })
    }
}

impl Tensor {
    /// Uploads `data` as an f32 tensor of `shape`.
    pub fn from_slice(device: &Device, data: &[f32], shape: &[usize]) -> Result<Self> {
        check_len("from_slice", data.len(), shape)?;
        device.upload("from_slice", shape, DType::F32, bytemuck::cast_slice(data))
    }

    /// Uploads `data` as an f16-storage tensor of `shape`.
    pub fn from_slice_f16(device: &Device, data: &[half::f16], shape: &[usize]) -> Result<Self> {
        check_len("from_slice_f16", data.len(), shape)?;
        device.upload(
            "from_slice_f16",
            shape,
            DType::F16,
            bytemuck::cast_slice(data),
        )
    }

    /// Uploads `data` as a u32 tensor of `shape` (token ids, indices).
    pub fn from_slice_u32(device: &Device, data: &[u32], shape: &[usize]) -> Result<Self> {
        check_len("from_slice_u32", data.len(), shape)?;
        device.upload(
            "from_slice_u32",
            shape,
            DType::U32,
            bytemuck::cast_slice(data),
        )
    }

    /// A tensor whose contents are unspecified (a pooled buffer, possibly
    /// holding an earlier tensor's values), for outputs a kernel writes in
    /// full: no fill dispatch.
    pub fn uninit(device: &Device, shape: &[usize], dtype: DType) -> Result<Self> {
        device.alloc("uninit", shape, dtype)
    }

    /// A tensor of zeros.
    pub fn zeros(device: &Device, shape: &[usize]) -> Result<Self> {
        Self::full(device, shape, 0.0)
    }

    /// A tensor filled with `value`.
    pub fn full(device: &Device, shape: &[usize], value: f32) -> Result<Self> {
        let t = device.alloc("full", shape, DType::F32)?;
        crate::ops::elementwise::fill(&t, value)?;
        Ok(t)
    }

    /// Uniform samples in `[lo, hi)` from a seeded generator.
    pub fn rand(device: &Device, shape: &[usize], lo: f32, hi: f32, rng: &mut Rng) -> Result<Self> {
        device.alloc("rand", shape, DType::F32)?; // check limits before generating
        let data: Vec<f32> = (0..numel(shape)).map(|_| rng.uniform(lo, hi)).collect();
        Self::from_slice(device, &data, shape)
    }

    /// Normal samples with `mean` and `std` from a seeded generator.
    pub fn randn(
        device: &Device,
        shape: &[usize],
        mean: f32,
        std: f32,
        rng: &mut Rng,
    ) -> Result<Self> {
        device.alloc("randn", shape, DType::F32)?;
        let data: Vec<f32> = (0..numel(shape))
            .map(|_| mean + std * rng.normal())
            .collect();
        Self::from_slice(device, &data, shape)
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Whether both tensors are views of one buffer (a reshape shares it).
    pub fn shares_storage(&self, other: &Tensor) -> bool {
        Arc::ptr_eq(&self.storage, &other.storage)
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        numel(&self.shape)
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Bytes of data (not the pooled capacity).
    pub fn bytes(&self) -> u64 {
        (self.numel() * self.dtype.size()) as u64
    }

    /// The device, or [`Error::DeviceDropped`].
    pub fn device(&self, op: &'static str) -> Result<Device> {
        self.device
            .upgrade()
            .map(|shared| Device { shared })
            .ok_or(Error::DeviceDropped { op })
    }

    pub(crate) fn storage(&self) -> &Arc<GpuBuffer> {
        &self.storage
    }

    /// Same storage viewed with another shape of the same element count.
    pub fn reshape(&self, shape: &[usize]) -> Result<Self> {
        if numel(shape) != self.numel() {
            return Err(Error::ShapeMismatch {
                op: "reshape",
                expected: format!("a shape with {} elements", self.numel()),
                got: shape.to_vec(),
            });
        }
        Ok(Self {
            shape: shape.to_vec(),
            ..self.clone()
        })
    }

    /// Fails with [`Error::DType`] unless this tensor is `want`.
    pub fn expect_dtype(&self, op: &'static str, want: DType) -> Result<()> {
        if self.dtype == want {
            Ok(())
        } else {
            Err(Error::DType {
                op,
                dtype: self.dtype,
                expected: match want {
                    DType::F32 => "F32",
                    DType::F16 => "F16",
                    DType::U32 => "U32",
                },
            })
        }
    }

    async fn raw_bytes(&self, op: &'static str) -> Result<Vec<u8>> {
        let dev = self.device(op)?;
        dev.read_buffer(&self.storage, self.bytes()).await
    }

    /// Reads the tensor back as f32 (f16 storage is widened), asynchronously.
    pub async fn to_vec_async(&self) -> Result<Vec<f32>> {
        let bytes = self.raw_bytes("to_vec").await?;
        Ok(match self.dtype {
            DType::F32 => bytemuck::pod_collect_to_vec(&bytes),
            DType::F16 => bytemuck::pod_collect_to_vec::<u8, half::f16>(&bytes)
                .into_iter()
                .map(f32::from)
                .collect(),
            DType::U32 => bytemuck::pod_collect_to_vec::<u8, u32>(&bytes)
                .into_iter()
                .map(|x| x as f32)
                .collect(),
        })
    }

    /// Reads a u32 tensor back, asynchronously.
    pub async fn to_vec_u32_async(&self) -> Result<Vec<u32>> {
        self.expect_dtype("to_vec_u32", DType::U32)?;
        Ok(bytemuck::pod_collect_to_vec(
            &self.raw_bytes("to_vec_u32").await?,
        ))
    }

    /// Reads an f16 tensor back without widening, asynchronously.
    pub async fn to_vec_f16_async(&self) -> Result<Vec<half::f16>> {
        self.expect_dtype("to_vec_f16", DType::F16)?;
        Ok(bytemuck::pod_collect_to_vec(
            &self.raw_bytes("to_vec_f16").await?,
        ))
    }

    /// Reads a one-element tensor back as a scalar, asynchronously.
    pub async fn item_async(&self) -> Result<f32> {
        if self.numel() != 1 {
            return Err(Error::ShapeMismatch {
                op: "item",
                expected: "one element".into(),
                got: self.shape.clone(),
            });
        }
        Ok(self.to_vec_async().await?[0])
    }
}

/// Blocking readbacks, for native callers: a browser's main thread cannot
/// block, so on wasm32 only the `_async` forms exist.
#[cfg(not(target_arch = "wasm32"))]
impl Tensor {
    /// Reads the tensor back as f32, blocking until the GPU is done.
    pub fn to_vec(&self) -> Result<Vec<f32>> {
        pollster::block_on(self.to_vec_async())
    }

    /// Reads a u32 tensor back.
    pub fn to_vec_u32(&self) -> Result<Vec<u32>> {
        pollster::block_on(self.to_vec_u32_async())
    }

    /// Reads an f16 tensor back without widening.
    pub fn to_vec_f16(&self) -> Result<Vec<half::f16>> {
        pollster::block_on(self.to_vec_f16_async())
    }

    /// Reads a one-element tensor back as a scalar.
    pub fn item(&self) -> Result<f32> {
        pollster::block_on(self.item_async())
    }
}
