//! The shader preprocessor: `#import NAME` (from `shaders/shared/`, each at
//! most once), `#define NAME [VALUE]`, `#ifdef` / `#ifndef` / `#else` /
//! `#endif`, and `const NAME = VALUE;` items for valued defines.
//!
//! It depends on nothing but `std`: `build.rs` includes this file to read
//! every entry point's bindings at build time, and the runtime uses it to
//! build pipelines, so both see the same source.

use std::collections::BTreeMap;

/// Preprocesses `src` (the shader `name`) with `defines`, resolving imports
/// through `import`. Errors are messages naming the shader and line.
pub fn preprocess_with<'s>(
    name: &str,
    src: &str,
    defines: &BTreeMap<&str, String>,
    import: &dyn Fn(&str) -> Option<&'s str>,
) -> Result<String, String> {
    let mut defs: BTreeMap<String, String> = defines
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    let mut body = String::new();
    let mut imported = Vec::new();
    expand(name, src, &mut defs, &mut imported, import, &mut body)?;
    // WGSL wants directives (`enable f16;`) before any declaration.
    let (directives, body): (Vec<&str>, Vec<&str>) = body
        .lines()
        .partition(|l| l.trim_start().starts_with("enable "));
    let mut out = String::new();
    for d in directives {
        if !out.contains(d) {
            out.push_str(d);
            out.push('\n');
        }
    }
    out.push('\n');
    for (k, v) in &defs {
        if !v.is_empty() {
            out.push_str(&format!("const {k} = {v};\n"));
        }
    }
    out.push_str(&body.join("\n"));
    Ok(out)
}

fn expand<'s>(
    shader: &str,
    src: &str,
    defs: &mut BTreeMap<String, String>,
    imported: &mut Vec<String>,
    import: &dyn Fn(&str) -> Option<&'s str>,
    out: &mut String,
) -> Result<(), String> {
    let err = |lineno: usize, what: String| format!("{shader}.wgsl line {}: {what}", lineno + 1);
    // Each entry: (this branch active, some enclosing branch inactive).
    let mut stack: Vec<(bool, bool)> = Vec::new();
    let active = |stack: &[(bool, bool)]| stack.iter().all(|(on, _)| *on);
    for (lineno, line) in src.lines().enumerate() {
        let t = line.trim();
        let mut words = t.split_whitespace();
        match words.next() {
            Some(d @ ("#ifdef" | "#ifndef")) => {
                let n = words
                    .next()
                    .ok_or_else(|| err(lineno, format!("{d} needs a name")))?;
                let on = defs.contains_key(n) == (d == "#ifdef");
                stack.push((on, !active(&stack)));
            }
            Some("#else") => {
                let top = stack
                    .last_mut()
                    .ok_or_else(|| err(lineno, "#else without #ifdef".into()))?;
                top.0 = !top.0;
            }
            Some("#endif") => {
                stack
                    .pop()
                    .ok_or_else(|| err(lineno, "#endif without #ifdef".into()))?;
            }
            _ if !active(&stack) => {}
            Some("#define") => {
                let n = words
                    .next()
                    .ok_or_else(|| err(lineno, "#define needs a name".into()))?;
                let v = words.collect::<Vec<_>>().join(" ");
                // The host's defines win over the shader's defaults.
                defs.entry(n.to_string()).or_insert(v);
            }
            Some("#import") => {
                let n = words
                    .next()
                    .ok_or_else(|| err(lineno, "#import needs a name".into()))?;
                if !imported.iter().any(|i| i == n) {
                    imported.push(n.to_string());
                    let inc = import(n).ok_or_else(|| {
                        err(lineno, format!("#import {n}: no shaders/shared/{n}.wgsl"))
                    })?;
                    expand(n, inc, defs, imported, import, out)?;
                }
            }
            _ => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    if !stack.is_empty() {
        return Err(format!("{shader}.wgsl: unterminated #ifdef"));
    }
    Ok(())
}

/// The names of the compute entry points declared in `src`: each `fn` that
/// follows an `@compute` attribute.
pub fn entry_points(src: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = src;
    while let Some(i) = rest.find("@compute") {
        rest = &rest[i + "@compute".len()..];
        if let Some(j) = rest.find("fn ") {
            let name: String = rest[j + 3..]
                .trim_start()
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() && !out.contains(&name) {
                out.push(name);
            }
        }
    }
    out
}
