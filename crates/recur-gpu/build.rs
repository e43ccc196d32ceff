//! Embeds every WGSL file under the workspace's `shaders/` into the crate, so
//! the kernels ship inside the library and need no files at run time.

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
    let shared = shaders.join("shared");
    println!("cargo:rerun-if-changed={}", shaders.display());
    println!("cargo:rerun-if-changed={}", shared.display());
    let kernels = collect(&shaders);
    let imports = collect(&shared);
    for (_, p) in kernels.iter().chain(&imports) {
        println!("cargo:rerun-if-changed={}", p.display());
    }
    let code = table("KERNELS", &kernels) + &table("IMPORTS", &imports);
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo")).join("shaders.rs");
    std::fs::write(out, code).expect("write shaders.rs");
}
