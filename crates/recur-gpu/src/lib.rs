//! `recur-gpu`: the host runtime of recur.
//!
//! It owns the wgpu [`Device`], a size-class buffer pool, [`Tensor`]s, the
//! kernel registry (WGSL embedded at build time, `#import`, defines, a
//! pipeline cache) and the recording of dispatches into few submissions.
//! Ops live in [`ops`]; each has a plain-Rust twin in [`reference`].
//!
//! ```no_run
//! use recur_gpu::{ops, Device, Tensor};
//! # fn main() -> recur_gpu::Result<()> {
//! let dev = Device::new()?;
//! let a = Tensor::from_slice(&dev, &[1.0, 2.0, 3.0, 4.0], &[2, 2])?;
//! let b = Tensor::from_slice(&dev, &[5.0, 6.0, 7.0, 8.0], &[2, 2])?;
//! let c = ops::gemm::matmul(&a, &b)?; // recorded, not yet run
//! assert_eq!(c.to_vec()?, vec![19.0, 22.0, 43.0, 50.0]); // one submission
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod bindings;
mod device;
mod engine;
mod error;
pub mod kernel;
pub mod ops;
mod pool;
mod preprocess;
pub mod record;
pub mod reference;
mod rng;
mod tensor;
mod tune;

pub use device::{parse_backends, Device, DeviceInfo, DeviceOptions, OPTIONAL_FEATURES};
pub use error::{Error, Result};
pub use pool::{size_class, MemoryStats};
pub use record::Counters;
pub use rng::Rng;
pub use tensor::{numel, DType, Tensor};
pub use wgpu;
