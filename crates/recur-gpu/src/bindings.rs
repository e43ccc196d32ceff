//! Every kernel's interface, generated at build time from its WGSL (see
//! `build.rs`): per entry point a struct with one named [`Bind`] per storage
//! binding, and per shader file its uniform parameter struct with the WGSL's
//! field offsets. Launchers fill both by name and record them with
//! `Device::launch`; a shader edit that changes an interface breaks the
//! build of the launcher that no longer matches.

pub use crate::kernel::Access;
pub use crate::record::Bind;

/// What the generated bindings structs have in common.
pub trait Bindings<'a> {
    /// The entry point's uniform parameter struct (binding 0).
    type Params: bytemuck::Pod;
    /// Shader file stem under `shaders/`.
    const SHADER: &'static str;
    /// Entry point.
    const ENTRY: &'static str;
    /// Binding names, in binding order (1, 2, ...).
    const NAMES: &'static [&'static str];
    /// Access mode of each binding.
    const ACCESS: &'static [Access];
    /// WGSL type of each binding (`array<f32>`, ...), with the shader's
    /// default defines.
    const ELEMENTS: &'static [&'static str];
    /// The bindings, in binding order.
    fn list(&self) -> Vec<Bind<'a>>;
}

include!(concat!(env!("OUT_DIR"), "/bindings.rs"));
