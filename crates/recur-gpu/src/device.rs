//! The device: adapter choice, features and limits, and the shared state
//! (pool, pipeline cache, open recording) that tensors and ops go through.

use std::sync::{Arc, Mutex, Weak};

use crate::engine::EngineBuffers;
use crate::error::{Error, Result};
use crate::kernel::PipelineCache;
use crate::pool::{MemoryStats, Pool};
use crate::record::Recorder;
use crate::tune::Tuner;

const NO_ADAPTER_HINT: &str = "install a Vulkan driver (on Debian/Ubuntu: `apt-get install mesa-vulkan-drivers` \
     gives the lavapipe CPU driver; ci/install-vulkan.sh does this), or a GPU driver for Metal/DX12/Vulkan";

/// How to pick an adapter. [`DeviceOptions::from_env`] reads `RECUR_ADAPTER`
/// (a case-insensitive substring of the adapter name) and `RECUR_BACKEND`
/// (`vulkan`, `metal`, `dx12`, `gl`, `webgpu`).
#[derive(Clone, Debug)]
pub struct DeviceOptions {
    /// Only adapters whose name contains this (case-insensitive).
    pub adapter: Option<String>,
    /// Only these backends.
    pub backends: wgpu::Backends,
    /// Preference among the remaining adapters.
    pub power: wgpu::PowerPreference,
    /// Optional features recur may enable when the adapter has them; clear
    /// bits to exercise the fallback paths (tests do).
    pub features: wgpu::Features,
    /// Cache bind groups by pipeline and buffer ranges (on by default; off
    /// only to measure what the cache saves).
    pub cache_bind_groups: bool,
    /// Enable wgpu's experimental cooperative matrices (tensor cores) when
    /// the adapter has a 16x16x16 f16 x f16 + f32 configuration, for
    /// [`crate::ops::gemm::GemmKernel::Coop`]. Off by default: wgpu marks the
    /// feature experimental.
    pub cooperative_matrix: bool,
    /// Opt-in mixed precision: with cooperative matrices enabled and
    /// usable ([`DeviceInfo::coop_f16`]), `Auto` GEMMs of at least 64 in
    /// every dimension (the layers' input projections, weight gradients and
    /// projections) run on them with f16 products and f32 accumulation.
    pub mixed_precision: bool,
    /// Choose kernels by measurement the first time a shape class is seen
    /// (see [`Device::tuned`]); `None`: on for GPUs, off for CPU adapters
    /// (whose deterministic rules are already their best).
    pub tune: Option<bool>,
    /// Keep tuned choices in this file across processes (lines of adapter,
    /// shape class and kernel; a bad file is ignored).
    pub tune_cache: Option<std::path::PathBuf>,
}

impl Default for DeviceOptions {
    fn default() -> Self {
        Self {
            adapter: None,
            backends: wgpu::Backends::all(),
            power: wgpu::PowerPreference::HighPerformance,
            features: OPTIONAL_FEATURES,
            cache_bind_groups: true,
            cooperative_matrix: false,
            mixed_precision: false,
            tune: None,
            tune_cache: None,
        }
    }
}

impl DeviceOptions {
    /// Defaults overridden by `RECUR_ADAPTER`, `RECUR_BACKEND`,
    /// `RECUR_COOPERATIVE_MATRIX=1` (opt into cooperative matrices),
    /// `RECUR_MIXED_PRECISION=1` (and run the big GEMMs on them),
    /// `RECUR_TUNE=0|1` and `RECUR_TUNE_CACHE=path`.
    pub fn from_env() -> Result<Self> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let mut o = Self {
            cooperative_matrix: var("RECUR_COOPERATIVE_MATRIX").is_some_and(|v| v == "1"),
            mixed_precision: var("RECUR_MIXED_PRECISION").is_some_and(|v| v == "1"),
            tune: var("RECUR_TUNE").map(|v| v != "0"),
            tune_cache: var("RECUR_TUNE_CACHE").map(Into::into),
            ..Self::default()
        };
        if let Ok(name) = std::env::var("RECUR_ADAPTER") {
            if !name.is_empty() {
                o.adapter = Some(name);
            }
        }
        if let Ok(b) = std::env::var("RECUR_BACKEND") {
            if !b.is_empty() {
                o.backends = parse_backends(&b)?;
            }
        }
        Ok(o)
    }
}

/// Parses a comma-separated backend list (`vulkan,gl`).
pub fn parse_backends(s: &str) -> Result<wgpu::Backends> {
    let mut out = wgpu::Backends::empty();
    for part in s.split(',').map(|p| p.trim().to_ascii_lowercase()) {
        out |= match part.as_str() {
            "vulkan" | "vk" => wgpu::Backends::VULKAN,
            "metal" => wgpu::Backends::METAL,
            "dx12" | "d3d12" => wgpu::Backends::DX12,
            "gl" | "gles" | "opengl" => wgpu::Backends::GL,
            "webgpu" | "browser" => wgpu::Backends::BROWSER_WEBGPU,
            other => {
                return Err(Error::InvalidArgument {
                    op: "RECUR_BACKEND",
                    what: format!("unknown backend {other:?} (vulkan, metal, dx12, gl, webgpu)"),
                })
            }
        };
    }
    Ok(out)
}

/// What the device is and what it can do.
#[derive(Clone, Debug)]
pub struct DeviceInfo {
    /// Adapter name, e.g. `llvmpipe (LLVM 19.1.7, 256 bits)`.
    pub name: String,
    /// Backend.
    pub backend: wgpu::Backend,
    /// Discrete, integrated, CPU, ...
    pub device_type: wgpu::DeviceType,
    /// Driver and its version.
    pub driver: String,
    /// Features enabled on the device (a subset of the adapter's).
    pub features: wgpu::Features,
    /// Limits requested: the adapter's own.
    pub limits: wgpu::Limits,
    /// Fewest and most invocations in a subgroup.
    pub subgroup_size: (u32, u32),
    /// Cooperative matrices are enabled with a 16x16x16 f16 x f16 + f32
    /// configuration, subgroups of exactly 32 and room for
    /// [`crate::ops::gemm::GemmKernel::Coop`]'s 24 KiB of workgroup memory.
    pub coop_f16: bool,
    /// `Auto` GEMMs run on cooperative matrices
    /// ([`DeviceOptions::mixed_precision`] and [`DeviceInfo::coop_f16`]).
    pub mixed_precision: bool,
}

impl DeviceInfo {
    /// True when `feature` is enabled.
    pub fn has(&self, feature: wgpu::Features) -> bool {
        self.features.contains(feature)
    }

    /// True when subgroup operations are enabled and every subgroup has at
    /// least `lanes` invocations.
    pub fn subgroups_of_at_least(&self, lanes: u32) -> bool {
        self.has(wgpu::Features::SUBGROUP) && self.subgroup_size.0 >= lanes
    }
}

impl std::fmt::Display for DeviceInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let l = &self.limits;
        writeln!(
            f,
            "adapter:  {} ({:?}, {:?})",
            self.name, self.backend, self.device_type
        )?;
        writeln!(f, "driver:   {}", self.driver)?;
        let feats: Vec<&str> = [
            (wgpu::Features::SHADER_F16, "SHADER_F16"),
            (wgpu::Features::SUBGROUP, "SUBGROUP"),
            (wgpu::Features::TIMESTAMP_QUERY, "TIMESTAMP_QUERY"),
            (wgpu::Features::IMMEDIATES, "IMMEDIATES"),
            (
                wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX,
                "COOPERATIVE_MATRIX",
            ),
        ]
        .into_iter()
        .filter(|(ft, _)| self.features.contains(*ft))
        .map(|(_, n)| n)
        .collect();
        writeln!(
            f,
            "features: {} (subgroups of {}..={})",
            feats.join(" "),
            self.subgroup_size.0,
            self.subgroup_size.1
        )?;
        writeln!(
            f,
            "limits:   storage binding {} B, buffer {} B, {} storage buffers per stage, workgroup {} invocations ({}x{}x{}), {} B workgroup memory",
            l.max_storage_buffer_binding_size,
            l.max_buffer_size,
            l.max_storage_buffers_per_shader_stage,
            l.max_compute_invocations_per_workgroup,
            l.max_compute_workgroup_size_x,
            l.max_compute_workgroup_size_y,
            l.max_compute_workgroup_size_z,
            l.max_compute_workgroup_storage_size
        )
    }
}

/// Features recur uses when the adapter has them, never requires.
pub const OPTIONAL_FEATURES: wgpu::Features = wgpu::Features::SHADER_F16
    .union(wgpu::Features::SUBGROUP)
    .union(wgpu::Features::TIMESTAMP_QUERY)
    .union(wgpu::Features::IMMEDIATES);

pub(crate) struct Shared {
    pub(crate) device: wgpu::Device,
    pub(crate) queue: wgpu::Queue,
    pub(crate) info: DeviceInfo,
    pub(crate) pool: Arc<Pool>,
    pub(crate) pipelines: PipelineCache,
    pub(crate) recorder: Mutex<Recorder>,
    /// Errors wgpu reported outside any error scope; returned by the next sync.
    pub(crate) uncaptured: Arc<Mutex<Vec<Raised>>>,
    /// The engine's parameter and index-error buffers.
    pub(crate) engine: EngineBuffers,
    /// Kernel choices by measurement.
    pub(crate) tuner: Tuner,
}

/// A GPU device with its queue, buffer pool, pipeline cache and the open
/// recording. Cheap to clone; tensors keep a weak reference to it.
#[derive(Clone)]
pub struct Device {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Device")
            .field("adapter", &self.shared.info.name)
            .finish()
    }
}

/// An error wgpu raised outside any scope (every error, in a browser),
/// kept until the next readback reports it.
#[derive(Debug)]
pub(crate) enum Raised {
    Validation(String),
    OutOfMemory(String),
    Lost(String),
}

fn type_rank(t: wgpu::DeviceType, power: wgpu::PowerPreference) -> u8 {
    use wgpu::DeviceType::*;
    match (t, power) {
        (DiscreteGpu, wgpu::PowerPreference::LowPower) => 1,
        (IntegratedGpu, wgpu::PowerPreference::LowPower) => 0,
        (DiscreteGpu, _) => 0,
        (IntegratedGpu, _) => 1,
        (VirtualGpu, _) => 2,
        (Cpu, _) => 3,
        (Other, _) => 4,
    }
}

impl Device {
    /// Opens the default device, honouring `RECUR_ADAPTER`/`RECUR_BACKEND`
    /// (blocking; native only, a browser uses [`Device::new_async`]).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn new() -> Result<Self> {
        pollster::block_on(Self::new_async())
    }

    /// Opens the default device, honouring `RECUR_ADAPTER`/`RECUR_BACKEND`
    /// where there is an environment.
    pub async fn new_async() -> Result<Self> {
        Self::with_options(DeviceOptions::from_env()?).await
    }

    /// Opens a device chosen by `options`.
    pub async fn with_options(options: DeviceOptions) -> Result<Self> {
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
            backends: options.backends,
            ..wgpu::InstanceDescriptor::new_without_display_handle()
        });
        let mut adapters = instance.enumerate_adapters(options.backends).await;
        if let Some(want) = &options.adapter {
            let want = want.to_lowercase();
            adapters.retain(|a| a.get_info().name.to_lowercase().contains(&want));
        }
        adapters.sort_by_key(|a| type_rank(a.get_info().device_type, options.power));
        let Some(adapter) = adapters.into_iter().next() else {
            let mut filter = String::new();
            if let Some(a) = &options.adapter {
                filter.push_str(&format!(" matching RECUR_ADAPTER={a:?}"));
            }
            if options.backends != wgpu::Backends::all() {
                filter.push_str(&format!(" on backends {:?}", options.backends));
            }
            return Err(Error::NoAdapter {
                filter,
                hint: NO_ADAPTER_HINT,
            });
        };
        Self::open(adapter, &options).await
    }

    /// Opens a device on `adapter`, with its own limits and those of
    /// `features` (a subset of [`OPTIONAL_FEATURES`]) that it has.
    pub async fn from_adapter(adapter: wgpu::Adapter, features: wgpu::Features) -> Result<Self> {
        let options = DeviceOptions {
            features,
            ..Default::default()
        };
        Self::open(adapter, &options).await
    }

    async fn open(adapter: wgpu::Adapter, options: &DeviceOptions) -> Result<Self> {
        let ainfo = adapter.get_info();
        let (cache, coop) = (options.cache_bind_groups, options.cooperative_matrix);
        let mut features = adapter.features() & OPTIONAL_FEATURES & options.features;
        let coop_config = adapter.cooperative_matrix_properties().iter().any(|c| {
            (c.m_size, c.n_size, c.k_size) == (16, 16, 16)
                && c.ab_type == wgpu::CooperativeScalarType::F16
                && c.cr_type == wgpu::CooperativeScalarType::F32
        });
        let coop = coop
            && coop_config
            && adapter
                .features()
                .contains(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX);
        let experimental = if coop {
            features |= wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX;
            // SAFETY: asked for by the caller (`DeviceOptions::
            // cooperative_matrix`, off by default); only the Coop GEMM
            // kernel uses the feature, and only on an adapter that reports
            // the exact configuration it is written for.
            unsafe { wgpu::ExperimentalFeatures::enabled() }
        } else {
            wgpu::ExperimentalFeatures::disabled()
        };
        let limits = adapter.limits();
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("recur"),
                required_features: features,
                required_limits: limits.clone(),
                experimental_features: experimental,
                memory_hints: wgpu::MemoryHints::Performance,
                trace: wgpu::Trace::Off,
            })
            .await
            .map_err(|source| Error::RequestDevice {
                adapter: ainfo.name.clone(),
                source,
            })?;
        // wgpu's default handler panics; record instead and report at sync.
        let uncaptured = Arc::new(Mutex::new(Vec::new()));
        let sink = uncaptured.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            if let Ok(mut v) = sink.lock() {
                v.push(match e {
                    wgpu::Error::OutOfMemory { source } => Raised::OutOfMemory(source.to_string()),
                    other => Raised::Validation(other.to_string()),
                });
            }
        }));
        let sink = uncaptured.clone();
        device.set_device_lost_callback(move |reason, message| {
            if let Ok(mut v) = sink.lock() {
                v.push(Raised::Lost(format!("{reason:?}: {message}")));
            }
        });
        let info = DeviceInfo {
            name: ainfo.name,
            backend: ainfo.backend,
            device_type: ainfo.device_type,
            driver: format!("{} {}", ainfo.driver, ainfo.driver_info)
                .trim()
                .to_string(),
            features: device.features(),
            limits: device.limits(),
            subgroup_size: (ainfo.subgroup_min_size, ainfo.subgroup_max_size),
            coop_f16: false,
            mixed_precision: false,
        };
        let info = DeviceInfo {
            coop_f16: coop
                && info.has(wgpu::Features::SUBGROUP)
                && info.has(wgpu::Features::SHADER_F16)
                && info.subgroup_size == (32, 32)
                && info.limits.max_compute_workgroup_storage_size >= 24 * 1024,
            ..info
        };
        let info = DeviceInfo {
            mixed_precision: options.mixed_precision && info.coop_f16,
            ..info
        };
        let engine = EngineBuffers::new(&device, &info.limits, cache);
        let tuner = Tuner::new(
            options
                .tune
                .unwrap_or(info.device_type != wgpu::DeviceType::Cpu),
            options.tune_cache.clone(),
            &format!("{} {:?} {}", info.name, info.backend, info.driver),
        );
        Ok(Self {
            shared: Arc::new(Shared {
                device,
                queue,
                info,
                pool: Arc::new(Pool::default()),
                pipelines: PipelineCache::default(),
                recorder: Mutex::new(Recorder::default()),
                uncaptured,
                engine,
                tuner,
            }),
        })
    }

    /// Adapter name, backend, type, enabled features and limits.
    pub fn info(&self) -> &DeviceInfo {
        &self.shared.info
    }

    /// The compact storage type for weights and activations: F16 where the
    /// adapter has SHADER_F16 (kernels keep f32 arithmetic), F32 elsewhere.
    /// Cast with [`crate::ops::elementwise::cast`] to store tensors in it.
    pub fn half_dtype(&self) -> crate::DType {
        if self.info().has(wgpu::Features::SHADER_F16) {
            crate::DType::F16
        } else {
            crate::DType::F32
        }
    }

    /// Buffer pool counters.
    pub fn memory_stats(&self) -> MemoryStats {
        self.shared.pool.stats()
    }

    /// Releases pooled (free) buffers back to the driver.
    pub fn trim_pool(&self) {
        self.clear_bind_groups();
        self.shared.pool.trim();
    }

    /// Number of compiled pipelines in the cache.
    pub fn pipeline_count(&self) -> usize {
        self.shared.pipelines.len()
    }

    /// The underlying wgpu device, for interop.
    pub fn wgpu_device(&self) -> &wgpu::Device {
        &self.shared.device
    }

    /// The underlying wgpu queue, for interop.
    pub fn wgpu_queue(&self) -> &wgpu::Queue {
        &self.shared.queue
    }

    pub(crate) fn downgrade(&self) -> Weak<Shared> {
        Arc::downgrade(&self.shared)
    }

    /// True when both handles are the same device.
    pub fn same(&self, other: &Device) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }
}
