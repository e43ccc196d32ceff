//! recur in a web page. [`checks`] compares the kernels a browser runs
//! against the CPU references; [`trainer`] trains a character model and
//! streams text from it. Both are plain async Rust, tested natively on
//! lavapipe; on wasm32 `web` exports them to JavaScript (wasm-bindgen), and
//! `web/` holds the page (`ci/web.sh build|serve|test`).

pub mod checks;
pub mod trainer;
#[cfg(target_arch = "wasm32")]
mod web;

pub use checks::{run_all, Check};
pub use trainer::{CharTrainer, TrainerConfig};
