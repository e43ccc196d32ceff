//! Shared helpers for recur-nn's tests.

use recur_nn::Device;

/// A device, or `None` (the test is skipped) when no adapter exists; under
/// CI (`CI=true`) a missing adapter fails instead.
pub fn device() -> Option<Device> {
    match Device::new() {
        Ok(d) => Some(d),
        Err(e) => {
            assert_ne!(
                std::env::var("CI").as_deref(),
                Ok("true"),
                "CI=true but no adapter: {e}"
            );
            None
        }
    }
}
