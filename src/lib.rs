#![doc = include_str!("../README.md")]

pub use recur_gpu as gpu;
pub use recur_nn as nn;
