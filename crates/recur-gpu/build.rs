//! Embeds every WGSL file under the workspace's `shaders/` into the crate (the
//! kernels ship inside the library and need no files at run time), and
//! declares each kernel's interface once, in its WGSL: every compute entry
//! point is preprocessed, parsed with naga, and turned into Rust:
//!
//! - a bindings struct per entry point (`bindings::scan::ScanSerial`), one
//!   named field per storage binding, with its access mode and element type;
//! - the uniform parameter struct, generated with naga's field offsets and
//!   size (`bindings::scan::Params`), with compile-time layout assertions.
//!
//! Launchers fill both by name, so a shader edit that renames, adds or
//! removes a binding or a parameter breaks the build, not a test.

#[path = "src/preprocess.rs"]
#[allow(dead_code)]
mod preprocess;

#[path = "build/bindgen.rs"]
mod bindgen;
#[path = "build/emit.rs"]
mod emit;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn collect(dir: &Path) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "wgsl") {
            let name = path
                .file_stem()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            out.push((name, path));
        }
    }
    out.sort();
    out
}

fn table(name: &str, files: &[(String, PathBuf)]) -> String {
    let mut s = format!("pub(crate) static {name}: &[(&str, &str)] = &[\n");
    for (stem, path) in files {
        let _ = writeln!(
            s,
            "    ({stem:?}, include_str!({:?})),",
            path.display().to_string()
        );
    }
    s.push_str("];\n");
    s
}

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let shaders = manifest.join("../../shaders");
    let shared_dir = shaders.join("shared");
    println!("cargo:rerun-if-changed={}", shaders.display());
    println!("cargo:rerun-if-changed={}", shared_dir.display());
    println!("cargo:rerun-if-changed=src/preprocess.rs");
    println!("cargo:rerun-if-changed=build");
    let kernels = collect(&shaders);
    let imports = collect(&shared_dir);
    for (_, p) in kernels.iter().chain(&imports) {
        println!("cargo:rerun-if-changed={}", p.display());
    }
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo"));
    let code = table("KERNELS", &kernels) + &table("IMPORTS", &imports);
    std::fs::write(out_dir.join("shaders.rs"), code).expect("write shaders.rs");

    emit::generate(&kernels, &imports, &out_dir);
}
