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

use std::collections::BTreeMap;
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

fn camel(s: &str) -> String {
    s.split('_')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

fn type_name(module: &naga::Module, ty: naga::Handle<naga::Type>) -> String {
    use naga::{ScalarKind, TypeInner};
    let scalar = |s: naga::Scalar| match (s.kind, s.width) {
        (ScalarKind::Float, 2) => "f16".to_string(),
        (ScalarKind::Float, 4) => "f32".to_string(),
        (ScalarKind::Uint, 4) => "u32".to_string(),
        (ScalarKind::Sint, 4) => "i32".to_string(),
        (k, w) => format!("{k:?}{}", w * 8),
    };
    let t = &module.types[ty];
    match &t.inner {
        TypeInner::Scalar(s) => scalar(*s),
        TypeInner::Vector { size, scalar: s } => format!("vec{}<{}>", *size as u8, scalar(*s)),
        TypeInner::Atomic(s) => format!("atomic<{}>", scalar(*s)),
        TypeInner::Array { base, .. } => format!("array<{}>", type_name(module, *base)),
        _ => t.name.clone().unwrap_or_else(|| format!("{:?}", t.inner)),
    }
}

/// The Rust type of a uniform field, or None for what the generator does
/// not lay out.
fn rust_field(module: &naga::Module, ty: naga::Handle<naga::Type>) -> Option<(String, u32)> {
    use naga::{ScalarKind, TypeInner};
    let scalar = |s: naga::Scalar| match (s.kind, s.width) {
        (ScalarKind::Float, 4) => Some("f32"),
        (ScalarKind::Uint, 4) => Some("u32"),
        (ScalarKind::Sint, 4) => Some("i32"),
        _ => None,
    };
    match &module.types[ty].inner {
        TypeInner::Scalar(s) => Some((scalar(*s)?.to_string(), 4)),
        TypeInner::Vector { size, scalar: s } => {
            let n = *size as u32;
            Some((format!("[{}; {n}]", scalar(*s)?), 4 * n))
        }
        _ => None,
    }
}

/// One storage binding of an entry point.
struct Binding {
    index: u32,
    name: String,
    write: bool,
    element: String,
    note: String,
}

/// The trailing `// comment` of the line declaring binding `name`.
fn note_of(src: &str, name: &str) -> String {
    let pat = format!(" {name}:");
    src.lines()
        .find(|l| l.contains("@binding(") && l.contains(&pat))
        .and_then(|l| l.split_once("//"))
        .map(|(_, c)| c.trim().replace('`', "'"))
        .unwrap_or_default()
}

struct Entry {
    shader: String,
    name: String,
    /// (file declaring the uniform struct, struct name), when there is one.
    params: Option<(String, String)>,
    bindings: Vec<Binding>,
}

/// Files a shader may pull in through `#import`, transitively (any branch).
fn imports_of<'a>(src: &'a str, shared: &'a BTreeMap<String, String>, out: &mut Vec<String>) {
    for line in src.lines() {
        let mut w = line.split_whitespace();
        if w.next() == Some("#import") {
            if let Some(n) = w.next() {
                if !out.iter().any(|o| o == n) {
                    out.push(n.to_string());
                    if let Some(s) = shared.get(n) {
                        imports_of(s, shared, out);
                    }
                }
            }
        }
    }
}

/// A uniform struct generated once per declaring file.
struct ParamsStruct {
    fields: Vec<(String, String, u32)>,
    size: u32,
}

fn read_entry(
    shader: &str,
    src: &str,
    entry: &str,
    shared: &BTreeMap<String, String>,
    structs: &mut BTreeMap<(String, String), ParamsStruct>,
) -> Entry {
    let mut defines = BTreeMap::new();
    let flag = entry.to_ascii_uppercase();
    defines.insert(flag.as_str(), String::new());
    let code = preprocess::preprocess_with(shader, src, &defines, &|n| {
        shared.get(n).map(|s| s.as_str())
    })
    .unwrap_or_else(|e| panic!("shaders/{shader}.wgsl ({entry}): {e}"));
    let module = naga::front::wgsl::parse_str(&code).unwrap_or_else(|e| {
        panic!(
            "shaders/{shader}.wgsl ({entry}):\n{}",
            e.emit_to_string(&code)
        )
    });
    assert!(
        module.entry_points.iter().any(|e| e.name == entry),
        "shaders/{shader}.wgsl: entry point {entry} is not declared under #ifdef {flag}"
    );
    let mut bindings = Vec::new();
    let mut params = None;
    for (_, g) in module.global_variables.iter() {
        let Some(rb) = &g.binding else { continue };
        let name = g.name.clone().unwrap_or_default();
        assert_eq!(
            rb.group, 0,
            "shaders/{shader}.wgsl ({entry}): {name} is not in group 0"
        );
        match g.space {
            naga::AddressSpace::Uniform => {
                assert_eq!(
                    rb.binding, 0,
                    "shaders/{shader}.wgsl ({entry}): the uniform {name} must be binding 0"
                );
                let ty = &module.types[g.ty];
                let sname = ty.name.clone().unwrap_or_else(|| "Params".into());
                let naga::TypeInner::Struct { members, span } = &ty.inner else {
                    panic!("shaders/{shader}.wgsl ({entry}): uniform {name} is not a struct");
                };
                let mut files = vec![shader.to_string()];
                imports_of(src, shared, &mut files);
                let decl = format!("struct {sname} {{");
                let file = files
                    .into_iter()
                    .find(|f| {
                        let text = if f == shader {
                            Some(src)
                        } else {
                            shared.get(f).map(|s| s.as_str())
                        };
                        text.is_some_and(|t| t.contains(&decl))
                    })
                    .unwrap_or_else(|| panic!("shaders/{shader}.wgsl: no file declares {decl}"));
                let fields: Vec<_> = members
                    .iter()
                    .map(|m| {
                        let (t, _) = rust_field(&module, m.ty).unwrap_or_else(|| {
                            panic!("shaders/{shader}.wgsl: {sname} field of an unsupported type")
                        });
                        (m.name.clone().unwrap_or_default(), t, m.offset)
                    })
                    .collect();
                // Each dispatch binds a 256-byte block of the engine's
                // parameter buffer (record::PARAMS_BLOCK).
                assert!(
                    *span <= 256,
                    "shaders/{shader}.wgsl: {sname} is {span} bytes, over the 256 a dispatch binds"
                );
                let s = ParamsStruct {
                    fields,
                    size: *span,
                };
                let key = (file.clone(), sname.clone());
                if let Some(old) = structs.get(&key) {
                    assert!(
                        old.size == s.size && old.fields == s.fields,
                        "shaders/{file}.wgsl: {sname} differs between entry points"
                    );
                } else {
                    structs.insert(key.clone(), s);
                }
                params = Some(key);
            }
            naga::AddressSpace::Storage { access } => {
                bindings.push(Binding {
                    index: rb.binding,
                    write: access.contains(naga::StorageAccess::STORE),
                    element: type_name(&module, g.ty),
                    note: note_of(&code, &name),
                    name,
                });
            }
            other => panic!("shaders/{shader}.wgsl ({entry}): {name} in {other:?}"),
        }
    }
    bindings.sort_by_key(|b| b.index);
    for (i, b) in bindings.iter().enumerate() {
        assert_eq!(
            b.index,
            i as u32 + 1,
            "shaders/{shader}.wgsl ({entry}): storage bindings must be numbered 1, 2, ... ({} is {})",
            b.name,
            b.index
        );
    }
    Entry {
        shader: shader.to_string(),
        name: entry.to_string(),
        params,
        bindings,
    }
}

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

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let shaders = manifest.join("../../shaders");
    let shared_dir = shaders.join("shared");
    println!("cargo:rerun-if-changed={}", shaders.display());
    println!("cargo:rerun-if-changed={}", shared_dir.display());
    println!("cargo:rerun-if-changed=src/preprocess.rs");
    let kernels = collect(&shaders);
    let imports = collect(&shared_dir);
    for (_, p) in kernels.iter().chain(&imports) {
        println!("cargo:rerun-if-changed={}", p.display());
    }
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo"));
    let code = table("KERNELS", &kernels) + &table("IMPORTS", &imports);
    std::fs::write(out_dir.join("shaders.rs"), code).expect("write shaders.rs");

    let read =
        |p: &Path| std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let shared: BTreeMap<String, String> =
        imports.iter().map(|(n, p)| (n.clone(), read(p))).collect();
    let mut structs = BTreeMap::new();
    let mut entries = Vec::new();
    for (name, path) in &kernels {
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
