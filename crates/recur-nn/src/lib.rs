//! `recur-nn`: layers and training on top of [`recur_gpu`].
//!
//! For now it holds the building block every later layer uses, [`Linear`],
//! with PyTorch's parameter layout and initialisation. The recurrent layers,
//! autograd and training loop arrive with their issues.

mod linear;

pub use linear::{Linear, LinearConfig};
pub use recur_gpu::{Device, Error, Result, Rng, Tensor};
