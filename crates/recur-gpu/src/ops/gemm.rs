//! GEMM launcher (`shaders/gemm.wgsl`).

use super::{device_of, storage_dtype, u32_of, Activation};
use crate::bindings::{gemm as tiled, gemm_blocked as blocked, gemm_coop as coop, gemm_io::Params};
use crate::error::{Error, Result};
use crate::kernel::KernelKey;
use crate::tensor::{DType, Tensor};

/// Which GEMM kernel to run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum GemmKernel {
    /// [`GemmKernel::Coop`] for GEMMs of at least 64 each way on a device
    /// with mixed precision ([`crate::DeviceInfo::mixed_precision`]); else,
    /// on a tuning device ([`crate::Device::tuning`]), the fastest of
    /// tiled, wide and blocked for the shape class; else
    /// [`GemmKernel::Blocked`] on CPU adapters, [`GemmKernel::Tiled`] on
    /// GPUs.
    #[default]
    Auto,
    /// 64x64 tiles, 8x8 register blocks, workgroup-memory staging.
    Tiled,
    /// 128x128 tiles of 256 invocations, 8x8 register blocks, slabs of 8
    /// double-buffered in workgroup memory: for large GPUs.
    Wide,
    /// 8x8 register blocks read straight from global memory, no barriers.
    Blocked,
    /// One output per invocation (the benchmark baseline).
    Naive,
    /// Tensor cores: f16 products, f32 accumulation (`gemm_coop`), where
    /// the device has them ([`crate::DeviceInfo::coop_f16`], opted into with
    /// `DeviceOptions::cooperative_matrix`); [`GemmKernel::Auto`]'s FFMA
    /// kernel everywhere else. Opt-in mixed precision: operands are rounded
    /// to f16.
    Coop,
}

impl GemmKernel {
    /// Every concrete f32 kernel (not `Auto`, not `Coop`).
    pub const ALL: [GemmKernel; 4] = [
        GemmKernel::Tiled,
        GemmKernel::Wide,
        GemmKernel::Blocked,
        GemmKernel::Naive,
    ];

    /// The concrete kernel for an adapter type; `Coop` stays `Coop` only
    /// when the device can run it.
    pub fn resolve(self, device_type: wgpu::DeviceType, coop_f16: bool) -> GemmKernel {
        match (self, device_type) {
            (GemmKernel::Coop, _) if coop_f16 => GemmKernel::Coop,
            (GemmKernel::Auto | GemmKernel::Coop, wgpu::DeviceType::Cpu) => GemmKernel::Blocked,
            (GemmKernel::Auto | GemmKernel::Coop, _) => GemmKernel::Tiled,
            (k, _) => k,
        }
    }

    /// Output rows and columns covered by one workgroup.
    fn tile(self) -> (usize, usize) {
        match self {
            GemmKernel::Tiled | GemmKernel::Auto | GemmKernel::Coop => (64, 64),
            GemmKernel::Wide => (128, 128),
            GemmKernel::Blocked => (8, 64),
            GemmKernel::Naive => (16, 16),
        }
    }
}

/// `C = act(alpha * op(A) op(B) + beta * C + bias)`.
#[derive(Clone, Copy, Debug)]
pub struct Gemm {
    /// Scale of the product.
    pub alpha: f32,
    /// Scale of C's previous contents (only read when non-zero).
    pub beta: f32,
    /// Use Aᵀ: A is stored (K, M).
    pub trans_a: bool,
    /// Use Bᵀ: B is stored (N, K) (PyTorch's `x @ W.T` with W (out, in)).
    pub trans_b: bool,
    /// Epilogue activation.
    pub activation: Activation,
    /// Kernel choice.
    pub kernel: GemmKernel,
}

impl Default for Gemm {
    fn default() -> Self {
        Self {
            alpha: 1.0,
            beta: 0.0,
            trans_a: false,
            trans_b: false,
            activation: Activation::Identity,
            kernel: GemmKernel::Auto,
        }
    }
}

/// Dimensions of a checked GEMM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GemmShape {
    /// Batch.
    pub z: usize,
    /// Rows of op(A).
    pub m: usize,
    /// Columns of op(B).
    pub n: usize,
    /// Inner dimension.
    pub k: usize,
    /// B is shared by every batch entry.
    pub shared_b: bool,
}

fn split(t: &Tensor) -> Option<(usize, usize, usize)> {
    match *t.shape() {
        [r, c] => Some((1, r, c)),
        [z, r, c] => Some((z, r, c)),
        _ => None,
    }
}

impl Gemm {
    /// Checks operand shapes: A (M, K) or (Z, M, K) (transposed: (K, M)),
    /// B (K, N) or (Z, K, N) (transposed: (N, K)); a 2-D B is shared across
    /// the batch.
    pub fn shape(&self, a: &Tensor, b: &Tensor) -> Result<GemmShape> {
        let mismatch = |expected: String, got: &Tensor| Error::ShapeMismatch {
            op: "gemm",
            expected,
            got: got.shape().to_vec(),
        };
        let (za, ra, ca) = split(a).ok_or_else(|| mismatch("A of rank 2 or 3".into(), a))?;
        let (zb, rb, cb) = split(b).ok_or_else(|| mismatch("B of rank 2 or 3".into(), b))?;
        let (m, k) = if self.trans_a { (ca, ra) } else { (ra, ca) };
        let (kb, n) = if self.trans_b { (cb, rb) } else { (rb, cb) };
        if kb != k {
            return Err(mismatch(
                format!(
                    "B with inner dimension {k} to match A {:?} (trans_a={}, trans_b={})",
                    a.shape(),
                    self.trans_a,
                    self.trans_b
                ),
                b,
            ));
        }
        let shared_b = b.shape().len() == 2;
        if !shared_b && zb != za {
            return Err(mismatch(
                format!("B with batch {za} like A {:?}", a.shape()),
                b,
            ));
        }
        Ok(GemmShape {
            z: za,
            m,
            n,
            k,
            shared_b,
        })
    }

    /// Output shape for A and B: (M, N), or (Z, M, N) for a batched A.
    pub fn out_shape(&self, a: &Tensor, s: &GemmShape) -> Vec<usize> {
        if a.shape().len() == 3 {
            vec![s.z, s.m, s.n]
        } else {
            vec![s.m, s.n]
        }
    }

    /// Runs the GEMM into a new tensor (beta is ignored: there is no old C).
    pub fn run(&self, a: &Tensor, b: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
        let s = self.shape(a, b)?;
        let dev = device_of("gemm", &[a, b])?;
        let dtype = storage_dtype("gemm", &[a, b])?;
        let out = dev.alloc("gemm", &self.out_shape(a, &s), dtype)?;
        Gemm { beta: 0.0, ..*self }.run_into(a, b, bias, &out)?;
        Ok(out)
    }

    /// Runs the GEMM into `c`, reading its old contents when beta ≠ 0.
    pub fn run_into(
        &self,
        a: &Tensor,
        b: &Tensor,
        bias: Option<&Tensor>,
        c: &Tensor,
    ) -> Result<()> {
        let s = self.shape(a, b)?;
        let mut operands = vec![a, b, c];
        operands.extend(bias);
        let dev = device_of("gemm", &operands)?;
        let dtype = storage_dtype("gemm", &operands)?;
        let want = self.out_shape(a, &s);
        crate::error::check_shape("gemm", &want, c.shape())?;
        if let Some(bias) = bias {
            crate::error::check_shape("gemm", &[s.n], bias.shape())?;
        }
        if s.z == 0 || s.m == 0 || s.n == 0 {
            return Ok(());
        }
        let (lda, ldb) = (
            a.shape()[a.shape().len() - 1],
            b.shape()[b.shape().len() - 1],
        );
        let params = Params {
            m: u32_of("gemm", "M", s.m)?,
            n: u32_of("gemm", "N", s.n)?,
            k: u32_of("gemm", "K", s.k)?,
            batch: u32_of("gemm", "batch", s.z)?,
            lda: lda as u32,
            ldb: ldb as u32,
            ldc: s.n as u32,
            act: self.activation as u32,
            stride_a: u32_of("gemm", "M*K", s.m * s.k)?,
            stride_b: if s.shared_b {
                0
            } else {
                u32_of("gemm", "K*N", s.k * s.n)?
            },
            stride_c: u32_of("gemm", "M*N", s.m * s.n)?,
            use_beta: (self.beta != 0.0) as u32,
            alpha: self.alpha,
            beta: self.beta,
            ..Params::default()
        };
        let big = s.m >= 64 && s.n >= 64 && s.k >= 64;
        let kernel = if self.kernel == GemmKernel::Auto && dev.info().mixed_precision && big {
            GemmKernel::Coop
        } else if self.kernel == GemmKernel::Auto && dev.tuning() {
            self.tuned(&dev, a, b, bias, &s, dtype)?
        } else {
            self.kernel
                .resolve(dev.info().device_type, dev.info().coop_f16)
        };
        // The blocked kernel's workgroup is 8 invocations: one subgroup when
        // subgroups have at least 8 lanes.
        let subgroups = kernel == GemmKernel::Blocked && dev.info().subgroups_of_at_least(8);
        let key = key(
            kernel,
            self.trans_a,
            self.trans_b,
            bias.is_some(),
            subgroups,
        )
        .flag("F16", dtype == DType::F16);

        let lim = dev.info().limits.max_compute_workgroups_per_dimension as usize;
        let (rows, cols) = kernel.tile();
        let groups = if kernel == GemmKernel::Blocked {
            // Row blocks vary fastest, so consecutive workgroups share one
            // K x 64 panel of op(B) while it is in cache.
            [s.m.div_ceil(rows), s.n.div_ceil(cols), s.z]
        } else {
            [s.n.div_ceil(cols), s.m.div_ceil(rows), s.z]
        };
        if groups.iter().any(|&g| g > lim) {
            return Err(Error::TooLarge {
                op: "gemm",
                shape: vec![s.z, s.m, s.n, s.k],
                bytes: c.bytes(),
                limit_name: "max_compute_workgroups_per_dimension",
                limit: lim as u64,
            });
        }
        // Every kernel binds the same operands; an absent bias is bound as
        // `a` and never read (BIAS is not defined).
        macro_rules! bindings {
            ($m:ident::$t:ident) => {
                $m::$t {
                    a: a.into(),
                    b: b.into(),
                    c: c.into(),
                    bias: bias.unwrap_or(a).into(),
                }
            };
        }
        let groups = groups.map(|g| g as u32);
        match kernel {
            GemmKernel::Tiled | GemmKernel::Auto => {
                dev.launch(&key, &params, &bindings!(tiled::Gemm), groups)
            }
            GemmKernel::Blocked => {
                dev.launch(&key, &params, &bindings!(blocked::GemmBlocked), groups)
            }
            GemmKernel::Naive => dev.launch(&key, &params, &bindings!(tiled::GemmNaive), groups),
            GemmKernel::Wide => dev.launch(&key, &params, &bindings!(tiled::GemmWide), groups),
            GemmKernel::Coop => dev.launch(&key, &params, &bindings!(coop::GemmCoop), groups),
        }
    }
}

impl Gemm {
    /// `Auto`'s kernel by measurement: the fastest FFMA kernel for this
    /// shape class (transposes, dtype, ⌈log₂⌉ of Z, M, N, K) on this device,
    /// timed into a scratch output the first time the class is seen.
    fn tuned(
        &self,
        dev: &crate::Device,
        a: &Tensor,
        b: &Tensor,
        bias: Option<&Tensor>,
        s: &GemmShape,
        dtype: DType,
    ) -> Result<GemmKernel> {
        use crate::tune::bucket;
        let class = format!(
            "gemm {}{} {dtype:?} z{} m{} n{} k{}",
            if self.trans_a { 't' } else { 'n' },
            if self.trans_b { 't' } else { 'n' },
            bucket(s.z),
            bucket(s.m),
            bucket(s.n),
            bucket(s.k)
        );
        let of = |name: &str| match name {
            "wide" => GemmKernel::Wide,
            "blocked" => GemmKernel::Blocked,
            _ => GemmKernel::Tiled,
        };
        let mut scratch = None;
        let choice = dev.tune(&class, &["tiled", "wide", "blocked"], |name| {
            if scratch.is_none() {
                scratch = Some(dev.alloc("gemm", &self.out_shape(a, s), dtype)?);
            }
            let Some(c) = scratch.as_ref() else {
                return Ok(());
            };
            let g = Gemm {
                kernel: of(name),
                beta: 0.0,
                ..*self
            };
            g.run_into(a, b, bias, c)
        })?;
        Ok(of(choice))
    }
}

fn key(kernel: GemmKernel, trans_a: bool, trans_b: bool, bias: bool, subgroups: bool) -> KernelKey {
    match kernel {
        GemmKernel::Tiled | GemmKernel::Auto => KernelKey::of::<tiled::Gemm>(),
        GemmKernel::Blocked => KernelKey::of::<blocked::GemmBlocked>(),
        GemmKernel::Naive => KernelKey::of::<tiled::GemmNaive>(),
        GemmKernel::Wide => KernelKey::of::<tiled::GemmWide>(),
        GemmKernel::Coop => KernelKey::of::<coop::GemmCoop>(),
    }
    .flag("TRANS_A", trans_a)
    .flag("TRANS_B", trans_b)
    .flag("BIAS", bias)
    .flag("SUBGROUPS", subgroups)
}

pub(crate) fn variants() -> Vec<KernelKey> {
    let mut v = Vec::new();
    for kernel in GemmKernel::ALL.into_iter().chain([GemmKernel::Coop]) {
        for bits in 0..16 {
            let (ta, tb, bias, f16) = (bits & 1 != 0, bits & 2 != 0, bits & 4 != 0, bits & 8 != 0);
            v.push(key(kernel, ta, tb, bias, false).flag("F16", f16));
            if kernel == GemmKernel::Blocked {
                v.push(key(kernel, ta, tb, bias, true).flag("F16", f16));
            }
        }
    }
    v
}

/// `a @ b` for (M, K) x (K, N), or batched (Z, M, K) x (Z, K, N) / (K, N).
pub fn matmul(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    Gemm::default().run(a, b, None)
}

/// `x @ wᵀ + bias`, PyTorch's `nn.Linear` with `w` of shape (out, in).
pub fn linear(x: &Tensor, w: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    Gemm {
        trans_b: true,
        ..Gemm::default()
    }
    .run(x, w, bias)
}
