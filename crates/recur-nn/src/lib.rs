//! `recur-nn`: layers and training on top of [`recur_gpu`].
//!
//! [`Linear`], and the recurrent layers [`Lstm`], [`Gru`] and [`Rnn`] with
//! PyTorch's semantics, parameter names and layout (a PyTorch `state_dict`
//! maps onto [`Recurrent::named_parameters`] name for name), plus one-step
//! cells for streaming; reverse-mode [`autograd`] over GPU ops with
//! [`functional`] ops and [`Module`]s ([`Embedding`], [`LayerNorm`],
//! [`RmsNorm`], [`Dropout`], [`Sequential`]); minGRU/minLSTM ([`MinRnn`]) and
//! Mamba ([`Mamba`], [`MambaLm`]) on parallel scans; fused optimizers, clipping,
//! truncated BPTT ([`tbptt`]) and atomic [`checkpoint`]s.

pub mod attention;
pub mod autograd;
mod cell;
pub mod checkpoint;
pub mod functional;
pub mod init;
mod layers;
mod linear;
mod mamba;
mod mamba2;
mod mamba_lm;
mod minrnn;
mod module;
pub mod optim;
mod recurrent;
pub mod stateful;
pub mod tasks;
pub mod tbptt;
pub mod text;

pub use attention::{
    AttentionState, GatedLinearAttention, GlaConfig, LinearAttention, LinearAttentionConfig,
    Retention, RetentionConfig,
};
pub use autograd::{is_grad_enabled, no_grad, NoGradGuard, Var};
pub use cell::{GruCell, LstmCell, RecurrentCell, RecurrentCellState, RnnCell};
pub use layers::{Dropout, Embedding, LayerNorm, RmsNorm};
pub use linear::{Linear, LinearConfig};
pub use mamba::{Mamba, MambaConfig, MambaState};
pub use mamba2::{Mamba2, Mamba2Config, Mamba2State};
pub use mamba_lm::{MambaBlock, MambaLm, MambaLmConfig, Mixer, MixerConfig};
pub use minrnn::{MinCell, MinRnn, MinRnnBlock, MinRnnConfig};
pub use module::{prefixed, Layer, Module, Sequential};
pub use optim::{
    clip_grad_norm, clip_grad_norm_params, clip_grad_value, Adam, AdamConfig, LrSchedule,
    Optimizer, Sgd, SgdConfig,
};
pub use recur_gpu::ops::rnn::Cell;
pub use recur_gpu::ops::scan::{ScanKind, ScanLayout};
pub use recur_gpu::ops::softmax::LossReduction;
pub use recur_gpu::{DType, Device, Error, Result, Rng, Tensor};
pub use recurrent::{
    Gru, LayerParams, Lstm, Recurrent, RecurrentConfig, RecurrentGrads, RecurrentOutput,
    RecurrentTape, RecurrentVars, Rnn,
};
pub use stateful::{
    Family, FusedLm, PreNorm, SequenceLm, SequenceLmConfig, Stack, State, StateTensor, Stateful,
    StreamId, StreamPool,
};
