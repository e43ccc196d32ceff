//! The crate's one error type.
//!
//! Every variant names the op that failed and, where shapes are involved, the
//! shapes it was given, so a message read in a log says what to fix.

/// Result alias used throughout `recur-gpu`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in `recur-gpu`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No adapter matched; the message says how to get one.
    #[error("no GPU adapter found{filter}: {hint}")]
    NoAdapter {
        /// Which filter (RECUR_ADAPTER / RECUR_BACKEND) was applied, if any.
        filter: String,
        /// How to get an adapter on this machine.
        hint: &'static str,
    },
    /// The adapter refused to create a device.
    #[error("request_device failed on adapter {adapter}: {source}")]
    RequestDevice {
        /// Adapter name.
        adapter: String,
        /// wgpu's error.
        source: wgpu::RequestDeviceError,
    },
    /// Two operands (or an operand and what the op expects) disagree in shape.
    #[error("{op}: shape mismatch: expected {expected}, got {got:?}")]
    ShapeMismatch {
        /// The op.
        op: &'static str,
        /// What the op expected, in words or as a shape.
        expected: String,
        /// The shape it was given.
        got: Vec<usize>,
    },
    /// A host slice's length does not match the shape asked for.
    #[error("{op}: {len} values cannot fill shape {shape:?} ({numel} elements)")]
    LengthMismatch {
        /// The op.
        op: &'static str,
        /// Length of the slice.
        len: usize,
        /// Requested shape.
        shape: Vec<usize>,
        /// Elements in that shape.
        numel: usize,
    },
    /// An argument is out of range (an axis, a slice bound, an index).
    #[error("{op}: invalid argument: {what}")]
    InvalidArgument {
        /// The op.
        op: &'static str,
        /// What is wrong.
        what: String,
    },
    /// The op does not support this dtype.
    #[error("{op}: unsupported dtype {dtype:?} (expected {expected})")]
    DType {
        /// The op.
        op: &'static str,
        /// What it got.
        dtype: crate::DType,
        /// What it takes.
        expected: &'static str,
    },
    /// A tensor is larger than the adapter can bind or allocate.
    #[error("{op}: tensor of shape {shape:?} needs {bytes} bytes, over the adapter's {limit_name} of {limit} bytes")]
    TooLarge {
        /// The op.
        op: &'static str,
        /// Requested shape.
        shape: Vec<usize>,
        /// Bytes needed.
        bytes: u64,
        /// Which limit it exceeds.
        limit_name: &'static str,
        /// The limit.
        limit: u64,
    },
    /// The tensor belongs to a device that has been dropped.
    #[error("{op}: the tensor's device has been dropped")]
    DeviceDropped {
        /// The op.
        op: &'static str,
    },
    /// Operands live on different devices.
    #[error("{op}: operands live on different devices")]
    DeviceMismatch {
        /// The op.
        op: &'static str,
    },
    /// The shader source failed to preprocess (bad #import, unbalanced #ifdef).
    #[error("shader {shader}: {what}")]
    Shader {
        /// Shader name.
        shader: String,
        /// What is wrong.
        what: String,
    },
    /// wgpu reported a validation error.
    #[error("{op}: GPU validation error: {message}")]
    Validation {
        /// The op (or phase: "submit", "create_pipeline").
        op: String,
        /// wgpu's message.
        message: String,
    },
    /// wgpu reported that it ran out of memory.
    #[error("{op}: GPU out of memory: {message}")]
    OutOfMemory {
        /// The op.
        op: String,
        /// wgpu's message.
        message: String,
    },
    /// Reading a buffer back failed.
    #[error("{op}: readback failed: {message}")]
    Readback {
        /// The op.
        op: &'static str,
        /// What failed.
        message: String,
    },
    /// A kernel met an index outside its table (a class target ≥ the number
    /// of classes, a token id ≥ the vocabulary). Kernels record the first
    /// such index on the device; the next readback or sync reports it.
    #[error("{op}: index {index} is out of range for a dimension of size {bound}")]
    IndexOutOfRange {
        /// The op whose kernel met the index.
        op: &'static str,
        /// The index.
        index: u32,
        /// The size it must be below.
        bound: u32,
    },
    /// The device was lost or polling failed.
    #[error("device lost: {0}")]
    DeviceLost(String),
    /// Reading or writing a file failed.
    #[error("{op}: {path}: {message}")]
    Io {
        /// The op.
        op: &'static str,
        /// The file.
        path: String,
        /// What the OS said.
        message: String,
    },
    /// A file is truncated, corrupt, or does not fit what it is loaded into.
    #[error("{op}: {what}")]
    Corrupt {
        /// The op.
        op: &'static str,
        /// What is wrong.
        what: String,
    },
}

impl Error {
    /// Turns a wgpu error captured by an error scope or handler into ours.
    #[cfg_attr(target_arch = "wasm32", allow(dead_code))] // no scopes there
    pub(crate) fn from_wgpu(op: impl Into<String>, err: wgpu::Error) -> Self {
        let op = op.into();
        match err {
            wgpu::Error::OutOfMemory { source } => Error::OutOfMemory {
                op,
                message: source.to_string(),
            },
            other => Error::Validation {
                op,
                message: other.to_string(),
            },
        }
    }
}

/// Checks that `got` equals `expected`, naming `op` otherwise.
pub(crate) fn check_shape(op: &'static str, expected: &[usize], got: &[usize]) -> Result<()> {
    if expected == got {
        Ok(())
    } else {
        Err(Error::ShapeMismatch {
            op,
            expected: format!("{expected:?}"),
            got: got.to_vec(),
        })
    }
}
