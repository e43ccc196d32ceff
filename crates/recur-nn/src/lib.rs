//! `recur-nn`: layers and training on top of [`recur_gpu`].
//!
//! [`Linear`], and the recurrent layers [`Lstm`], [`Gru`] and [`Rnn`] with
//! PyTorch's semantics, parameter names and layout (a PyTorch `state_dict`
//! maps onto [`Recurrent::named_parameters`] name for name), plus one-step
//! cells for streaming. Autograd and the training loop arrive with their issue.

mod cell;
pub mod checkpoint;
pub mod init;
mod linear;
pub mod optim;
mod recurrent;

pub use cell::{GruCell, LstmCell, RecurrentCell, RecurrentCellState, RnnCell};
pub use linear::{Linear, LinearConfig};
pub use optim::{clip_grad_norm, clip_grad_value, Adam, AdamConfig, LrSchedule, Sgd, SgdConfig};
pub use recur_gpu::ops::rnn::Cell;
pub use recur_gpu::{Device, Error, Result, Rng, Tensor};
pub use recurrent::{
    Gru, LayerParams, Lstm, Recurrent, RecurrentConfig, RecurrentGrads, RecurrentOutput,
    RecurrentTape, Rnn,
};
