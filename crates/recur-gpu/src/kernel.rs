//! Kernel registry: embedded WGSL sources, a small preprocessor (`#import`,
//! `#define`, `#ifdef`/`#ifndef`/`#else`/`#endif`) and a pipeline cache keyed
//! by (shader, entry point, defines).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};

include!(concat!(env!("OUT_DIR"), "/shaders.rs"));

/// Names of every kernel shader (files directly under `shaders/`).
pub fn shader_names() -> impl Iterator<Item = &'static str> {
    KERNELS.iter().map(|(name, _)| *name)
}

/// The compute entry points declared in shader `name` (any `#ifdef` branch).
pub fn entry_points(name: &str) -> Vec<String> {
    lookup(KERNELS, name)
        .map(crate::preprocess::entry_points)
        .unwrap_or_default()
}

/// Identifies one compiled pipeline: a shader, an entry point and its defines.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KernelKey {
    /// Shader file stem under `shaders/`.
    pub shader: &'static str,
    /// Entry point.
    pub entry: &'static str,
    /// Defines, sorted by name. A value of `""` is a flag for `#ifdef`;
    /// anything else also becomes `const NAME = VALUE;`.
    pub defines: BTreeMap<&'static str, String>,
}

impl KernelKey {
    /// A key for `entry` in `shader`. The entry's name in upper case is
    /// defined as a flag, so a file with several entry points can declare
    /// each one's bindings under `#ifdef ENTRY`.
    pub fn new(shader: &'static str, entry: &'static str) -> Self {
        let mut defines = BTreeMap::new();
        defines.insert(entry_flag(entry), String::new());
        Self {
            shader,
            entry,
            defines,
        }
    }

    /// Adds a define (a flag when `value` is empty).
    pub fn define(mut self, name: &'static str, value: impl ToString) -> Self {
        self.defines.insert(name, value.to_string());
        self
    }

    /// Adds a flag define when `on`.
    pub fn flag(self, name: &'static str, on: bool) -> Self {
        if on {
            self.define(name, "")
        } else {
            self
        }
    }

    /// A key for the entry point whose generated bindings are `B`.
    pub fn of<'a, B: crate::bindings::Bindings<'a>>() -> Self {
        Self::new(B::SHADER, B::ENTRY)
    }

    /// The WGSL source after preprocessing with this key's defines.
    pub fn source(&self) -> Result<String> {
        preprocess(self.shader, &self.defines)
    }
}

fn entry_flag(entry: &'static str) -> &'static str {
    // Entry names are static; leak one upper-case copy per distinct name.
    static FLAGS: Mutex<Vec<(&'static str, &'static str)>> = Mutex::new(Vec::new());
    let mut flags = FLAGS.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, f)) = flags.iter().find(|(e, _)| *e == entry) {
        return f;
    }
    let f: &'static str = Box::leak(entry.to_ascii_uppercase().into_boxed_str());
    flags.push((entry, f));
    f
}

fn lookup(table: &[(&str, &'static str)], name: &str) -> Option<&'static str> {
    table.iter().find(|(n, _)| *n == name).map(|(_, s)| *s)
}

/// Preprocesses shader `name` with `defines`: resolves `#import NAME` from
/// `shaders/shared/` (each at most once), applies `#define`, `#ifdef`,
/// `#ifndef`, `#else`, `#endif`, and prepends `const` items for valued defines.
pub fn preprocess(name: &str, defines: &BTreeMap<&'static str, String>) -> Result<String> {
    let src = lookup(KERNELS, name).ok_or_else(|| Error::Shader {
        shader: name.to_string(),
        what: "no such shader under shaders/".into(),
    })?;
    crate::preprocess::preprocess_with(name, src, defines, &|n| lookup(IMPORTS, n)).map_err(
        |what| Error::Shader {
            shader: name.to_string(),
            what,
        },
    )
}

/// How a kernel uses one storage binding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Access {
    /// `var<storage, read>`.
    Read,
    /// `var<storage, read_write>`.
    ReadWrite,
}

/// A compiled pipeline and its explicit bind group layout. Binding 0 is the
/// kernel's uniform parameter struct; bindings 1.. are storage buffers.
#[derive(Debug)]
pub struct Kernel {
    pub(crate) key: KernelKey,
    pub(crate) pipeline: wgpu::ComputePipeline,
    pub(crate) layout: wgpu::BindGroupLayout,
}

impl Kernel {
    /// The key this pipeline was built from.
    pub fn key(&self) -> &KernelKey {
        &self.key
    }
}

/// A pipeline's identity: its key and its bindings' access modes.
type PipelineId = (KernelKey, Vec<Access>);

/// Pipelines built so far.
#[derive(Default)]
pub(crate) struct PipelineCache {
    map: Mutex<HashMap<PipelineId, Arc<Kernel>>>,
}

impl PipelineCache {
    pub(crate) fn get(
        &self,
        device: &wgpu::Device,
        key: &KernelKey,
        access: &[Access],
    ) -> Result<Arc<Kernel>> {
        let lookup_key = (key.clone(), access.to_vec());
        if let Some(k) = self.map.lock().map_err(poisoned)?.get(&lookup_key) {
            return Ok(k.clone());
        }
        let kernel = Arc::new(build(device, key, access)?);
        self.map
            .lock()
            .map_err(poisoned)?
            .insert(lookup_key, kernel.clone());
        Ok(kernel)
    }

    pub(crate) fn len(&self) -> usize {
        self.map.lock().map(|m| m.len()).unwrap_or(0)
    }
}

pub(crate) fn poisoned<T>(_: std::sync::PoisonError<T>) -> Error {
    Error::DeviceLost("a thread panicked while holding recur's device lock".into())
}

fn label(key: &KernelKey) -> String {
    let mut s = format!("recur::{}::{}", key.shader, key.entry);
    for (k, v) in &key.defines {
        s.push_str(&format!(" {k}={v}"));
    }
    s
}

fn build(device: &wgpu::Device, key: &KernelKey, access: &[Access]) -> Result<Kernel> {
    let source = key.source()?;
    let name = label(key);
    let scope = ErrorScope::push(device);
    let checks = wgpu::ShaderRuntimeChecks {
        bounds_checks: true,
        force_loop_bounding: false,
        ..wgpu::ShaderRuntimeChecks::checked()
    };
    // SAFETY: every loop in recur's shaders has a bound taken from its
    // parameters, so wgpu's injected loop counters only cost time; buffer
    // bounds checks stay on.
    let module = unsafe {
        device.create_shader_module_trusted(
            wgpu::ShaderModuleDescriptor {
                label: Some(&name),
                source: wgpu::ShaderSource::Wgsl(source.into()),
            },
            checks,
        )
    };
    let mut entries = vec![wgpu::BindGroupLayoutEntry {
        binding: 0,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer {
            ty: wgpu::BufferBindingType::Uniform,
            has_dynamic_offset: true,
            min_binding_size: None,
        },
        count: None,
    }];
    for (i, a) in access.iter().enumerate() {
        entries.push(wgpu::BindGroupLayoutEntry {
            binding: i as u32 + 1,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Storage {
                    read_only: *a == Access::Read,
                },
                has_dynamic_offset: false,
                min_binding_size: None,
            },
            count: None,
        });
    }
    let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
        label: Some(&name),
        entries: &entries,
    });
    let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
        label: Some(&name),
        bind_group_layouts: &[Some(&layout)],
        immediate_size: 0,
    });
    let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some(&name),
        layout: Some(&pipeline_layout),
        module: &module,
        entry_point: Some(key.entry),
        compilation_options: wgpu::PipelineCompilationOptions {
            constants: &[],
            // Every kernel writes what it reads from workgroup memory first.
            zero_initialize_workgroup_memory: false,
        },
        cache: None,
    });
    scope.pop(format!("create_pipeline {name}"))?;
    Ok(Kernel {
        key: key.clone(),
        pipeline,
        layout,
    })
}

/// A validation error scope around native work. A browser resolves a scope
/// only from its event loop, which nothing here may wait for, so on wasm32
/// no scope is pushed: errors reach the device's uncaptured-error sink and
/// come back, typed, from the next readback.
pub(crate) struct ErrorScope {
    #[cfg(not(target_arch = "wasm32"))]
    guard: wgpu::ErrorScopeGuard,
}

impl ErrorScope {
    pub(crate) fn push(device: &wgpu::Device) -> Self {
        #[cfg(target_arch = "wasm32")]
        let _ = device;
        Self {
            #[cfg(not(target_arch = "wasm32"))]
            guard: device.push_error_scope(wgpu::ErrorFilter::Validation),
        }
    }

    /// The error raised inside the scope, if any, as `op`'s.
    pub(crate) fn pop(self, op: impl Into<String>) -> Result<()> {
        #[cfg(not(target_arch = "wasm32"))]
        if let Some(e) = pollster::block_on(self.guard.pop()) {
            return Err(Error::from_wgpu(op, e));
        }
        #[cfg(target_arch = "wasm32")]
        let _ = (self, op.into());
        Ok(())
    }
}
