//! The bindings generator of `build.rs`, writing half: the Rust text of each
//! uniform struct (with layout assertions), each entry point's bindings
//! struct and `Bindings` impl, and `declared()`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::bindgen::{camel, read_entry, Entry, ParamsStruct};
use crate::preprocess;

fn emit_params(out: &mut String, (file, name): &(String, String), s: &ParamsStruct) {
    let _ = writeln!(
        out,
        "    /// The uniform `{name}` declared in `{file}.wgsl`: {} bytes, laid out as the WGSL (naga's offsets).",
        s.size
    );
    let _ = writeln!(
        out,
        "    #[repr(C)]\n    #[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]\n    pub struct {name} {{"
    );
    let mut at = 0;
    let mut gaps = 0;
    for (field, ty, offset) in &s.fields {
        if *offset > at {
            let _ = writeln!(
                out,
                "        #[doc(hidden)]\n        pub _gap{gaps}: [u8; {}],",
                offset - at
            );
            gaps += 1;
        }
        let _ = writeln!(
            out,
            "        /// WGSL `{field}` at byte {offset}.\n        pub {field}: {ty},"
        );
        at = offset + if ty.starts_with('[') { ty_len(ty) } else { 4 };
    }
    if s.size > at {
        let _ = writeln!(
            out,
            "        #[doc(hidden)]\n        pub _gap{gaps}: [u8; {}],",
            s.size - at
        );
    }
    out.push_str("    }\n");
    let _ = writeln!(
        out,
        "    const _: () = assert!(core::mem::size_of::<{name}>() == {});",
        s.size
    );
    for (field, _, offset) in &s.fields {
        let _ = writeln!(
            out,
            "    const _: () = assert!(core::mem::offset_of!({name}, {field}) == {offset});"
        );
    }
}

fn ty_len(ty: &str) -> u32 {
    // "[f32; 4]"
    ty.trim_end_matches(']')
        .rsplit(' ')
        .next()
        .and_then(|n| n.parse::<u32>().ok())
        .unwrap_or(1)
        * 4
}

fn emit_entry(out: &mut String, e: &Entry) {
    let ty = camel(&e.name);
    let _ = writeln!(
        out,
        "    /// Storage bindings of the entry point `{}` in `shaders/{}.wgsl` (binding 0 is its uniform parameters).",
        e.name, e.shader
    );
    let _ = writeln!(
        out,
        "    #[derive(Clone, Copy, Debug)]\n    pub struct {ty}<'a> {{"
    );
    for b in &e.bindings {
        let _ = writeln!(
            out,
            "        /// Binding {}: `{}`, {}{}.\n        pub {}: Bind<'a>,",
            b.index,
            b.element,
            if b.write { "read_write" } else { "read" },
            if b.note.is_empty() {
                String::new()
            } else {
                format!(": {}", b.note)
            },
            b.name
        );
    }
    if e.bindings.is_empty() {
        out.push_str(
            "        #[doc(hidden)]\n        pub _none: core::marker::PhantomData<&'a ()>,\n",
        );
    }
    out.push_str("    }\n");
    let (file, name) = e.params.as_ref().unwrap_or_else(|| {
        panic!(
            "shaders/{}.wgsl ({}): no uniform parameter struct at binding 0",
            e.shader, e.name
        )
    });
    let params = format!("super::{file}::{name}");
    let access: Vec<String> = e
        .bindings
        .iter()
        .map(|b| {
            if b.write {
                "Access::ReadWrite".into()
            } else {
                "Access::Read".into()
            }
        })
        .collect();
    let elements: Vec<String> = e
        .bindings
        .iter()
        .map(|b| format!("{:?}", b.element))
        .collect();
    let list: Vec<String> = e
        .bindings
        .iter()
        .map(|b| format!("self.{}", b.name))
        .collect();
    let _ = writeln!(
        out,
        "    impl<'a> Bindings<'a> for {ty}<'a> {{
        type Params = {params};
        const SHADER: &'static str = {:?};
        const ENTRY: &'static str = {:?};
        const NAMES: &'static [&'static str] = &[{}];
        const ACCESS: &'static [Access] = &[{}];
        const ELEMENTS: &'static [&'static str] = &[{}];
        fn list(&self) -> Vec<Bind<'a>> {{
            vec![{}]
        }}
    }}",
        e.shader,
        e.name,
        e.bindings
            .iter()
            .map(|b| format!("{:?}", b.name))
            .collect::<Vec<_>>()
            .join(", "),
        access.join(", "),
        elements.join(", "),
        list.join(", ")
    );
}

/// Writes `$OUT_DIR/bindings.rs`: per shader file, its uniform structs and
/// its entry points' bindings, then `declared()`.
pub fn generate(kernels: &[(String, PathBuf)], imports: &[(String, PathBuf)], out_dir: &Path) {
    let read =
        |p: &Path| std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let shared: BTreeMap<String, String> =
        imports.iter().map(|(n, p)| (n.clone(), read(p))).collect();
    let mut structs = BTreeMap::new();
    let mut entries = Vec::new();
    for (name, path) in kernels {
        let src = read(path);
        for entry in preprocess::entry_points(&src) {
            entries.push(read_entry(name, &src, &entry, &shared, &mut structs));
        }
    }
    // One module per file: its uniform structs and its entry points' bindings.
    let mut files: Vec<&String> = entries
        .iter()
        .map(|e| &e.shader)
        .chain(structs.keys().map(|(f, _)| f))
        .collect();
    files.sort();
    files.dedup();
    let mut out = String::new();
    for file in files {
        let _ = writeln!(
            out,
            "/// Interface of `shaders/{}{file}.wgsl`.\npub mod {file} {{\n    #[allow(unused_imports)]\n    use super::{{Access, Bind, Bindings}};",
            if shared.contains_key(file.as_str()) { "shared/" } else { "" }
        );
        for (key, s) in structs.iter().filter(|((f, _), _)| f == file) {
            emit_params(&mut out, key, s);
        }
        for e in entries.iter().filter(|e| &e.shader == file) {
            emit_entry(&mut out, e);
        }
        out.push_str("}\n");
    }
    out.push_str(
        "/// The bindings (name, access) the generated struct of `shader`'s `entry` declares.\n\
         pub fn declared(shader: &str, entry: &str) -> Option<Vec<(&'static str, Access)>> {\n\
         \x20   fn of<'a, B: Bindings<'a>>() -> Vec<(&'static str, Access)> {\n\
         \x20       B::NAMES.iter().copied().zip(B::ACCESS.iter().copied()).collect()\n\
         \x20   }\n\
         \x20   match (shader, entry) {\n",
    );
    for e in &entries {
        let _ = writeln!(
            out,
            "        ({:?}, {:?}) => Some(of::<{}::{}>()),",
            e.shader,
            e.name,
            e.shader,
            camel(&e.name)
        );
    }
    out.push_str("        _ => None,\n    }\n}\n");
    std::fs::write(out_dir.join("bindings.rs"), out).expect("write bindings.rs");
}
