//! The bindings generator of `build.rs`, reading half: preprocesses every
//! compute entry point with its entry flag, parses it with naga, and
//! collects its storage bindings and its uniform struct's layout
//! (`emit.rs` writes the Rust).

use std::collections::BTreeMap;

use crate::preprocess;

pub(crate) fn camel(s: &str) -> String {
    s.split('_')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

pub(crate) fn type_name(module: &naga::Module, ty: naga::Handle<naga::Type>) -> String {
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
pub(crate) fn rust_field(
    module: &naga::Module,
    ty: naga::Handle<naga::Type>,
) -> Option<(String, u32)> {
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
pub(crate) struct Binding {
    pub(crate) index: u32,
    pub(crate) name: String,
    pub(crate) write: bool,
    pub(crate) element: String,
    pub(crate) note: String,
}

/// The trailing `// comment` of the line declaring binding `name`.
pub(crate) fn note_of(src: &str, name: &str) -> String {
    let pat = format!(" {name}:");
    src.lines()
        .find(|l| l.contains("@binding(") && l.contains(&pat))
        .and_then(|l| l.split_once("//"))
        .map(|(_, c)| c.trim().replace('`', "'"))
        .unwrap_or_default()
}

pub(crate) struct Entry {
    pub(crate) shader: String,
    pub(crate) name: String,
    /// (file declaring the uniform struct, struct name), when there is one.
    pub(crate) params: Option<(String, String)>,
    pub(crate) bindings: Vec<Binding>,
}

/// Files a shader may pull in through `#import`, transitively (any branch).
pub(crate) fn imports_of<'a>(
    src: &'a str,
    shared: &'a BTreeMap<String, String>,
    out: &mut Vec<String>,
) {
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
pub(crate) struct ParamsStruct {
    pub(crate) fields: Vec<(String, String, u32)>,
    pub(crate) size: u32,
}

pub(crate) fn read_entry(
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
