//! Recording the scan kernels: the strategy for a shape and adapter, the
//! split of sequences larger than one storage binding into groups of whole
//! batch items, and the one or three dispatches of each group.

use super::{Dims, Scan, ScanKind, ScanLayout, ScanStrategy};
use crate::bindings::{scan as k, scan_core::Params, scan_tp as tp};
use crate::device::Device;
use crate::error::{Error, Result};
use crate::kernel::KernelKey;
use crate::ops::u32_of;
use crate::record::Bind;
use crate::tensor::{DType, Tensor};

/// Invocations the time-parallel strategy aims to have running at once
/// (an H200 holds ~270k resident invocations).
const TP_TARGET: usize = 1 << 18;

/// Fewest steps per time-parallel chunk: shorter chunks spend more on the
/// chunk summaries than they save.
const TP_MIN_CHUNK: usize = 16;

/// (batch × channel lanes) from which a GPU runs the serial kernel.
const SERIAL_LANES: usize = 1 << 17;

/// The tensors besides a, b and h0, per direction.
pub(super) enum Io<'a> {
    Forward {
        h: &'a Tensor,
        last: &'a Tensor,
    },
    Backward {
        h: &'a Tensor,
        g: &'a Tensor,
        da: &'a Tensor,
        db: &'a Tensor,
        dh0: &'a Tensor,
    },
}

impl Dims {
    /// Channels are processed as vec4s when they come in fours (then every
    /// offset is a multiple of 4 too).
    fn vec4(&self) -> bool {
        self.dim.is_multiple_of(4)
    }

    /// Channels per kernel lane.
    fn lanes(&self) -> usize {
        if self.vec4() {
            4
        } else {
            1
        }
    }

    /// Channel lanes (vec4s or channels).
    fn units(&self) -> usize {
        self.dim / self.lanes()
    }
}

/// The strategy and time chunking one recording uses.
#[derive(Clone, Copy, Debug)]
struct Plan {
    strategy: ScanStrategy,
    /// Steps per segment (chunked) or per chunk (time-parallel).
    seg: usize,
    /// Time chunks (time-parallel).
    chunks: usize,
}

fn tp_chunk(d: &Dims, forced: Option<usize>) -> usize {
    let lanes = d.batch * d.units();
    let auto = d
        .steps
        .div_ceil(TP_TARGET.div_ceil(lanes))
        .max(TP_MIN_CHUNK);
    forced
        .unwrap_or(auto)
        .max(1)
        .max(d.steps.div_ceil(u16::MAX as usize))
}

fn plan(scan: &Scan, dev: &Device, d: &Dims) -> Result<Plan> {
    let lim = dev.info().limits.max_compute_workgroups_per_dimension as usize;
    let tp_fits =
        |chunk: usize| d.steps.div_ceil(chunk) <= lim && d.units() <= lim && d.batch <= lim;
    let strategy = match scan.strategy {
        ScanStrategy::Auto => {
            let gpu = dev.info().device_type != wgpu::DeviceType::Cpu;
            let chunk = tp_chunk(d, scan.chunk);
            if gpu && d.batch * d.units() < SERIAL_LANES && d.steps >= 2 * chunk && tp_fits(chunk) {
                ScanStrategy::TimeParallel
            } else {
                ScanStrategy::Serial
            }
        }
        s => s,
    };
    let seg = match strategy {
        ScanStrategy::Chunked => d.steps.div_ceil(8).clamp(1, 64),
        ScanStrategy::TimeParallel => tp_chunk(d, scan.chunk),
        _ => d.steps,
    };
    if strategy == ScanStrategy::TimeParallel && !tp_fits(seg) {
        return Err(Error::InvalidArgument {
            op: "scan",
            what: format!(
                "{} time chunks, {} channel lanes or batch {} exceed {lim} workgroups per dimension",
                d.steps.div_ceil(seg),
                d.units(),
                d.batch
            ),
        });
    }
    Ok(Plan {
        strategy,
        seg,
        chunks: d.steps.div_ceil(seg),
    })
}

fn flags(scan: &Scan, d: &Dims, key: KernelKey) -> KernelKey {
    key.flag("LOG", scan.kind == ScanKind::Log)
        .flag("VEC4", d.vec4())
        .flag("F16", d.dtype == DType::F16)
}

/// Workgroups of the single-pass kernels.
fn groups(dev: &Device, plan: &Plan, d: &Dims) -> Result<[u32; 3]> {
    let lim = dev.info().limits.max_compute_workgroups_per_dimension;
    Ok(match plan.strategy {
        ScanStrategy::Chunked => {
            let x = d.units().div_ceil(8);
            if x > lim as usize || d.batch > lim as usize {
                return Err(Error::InvalidArgument {
                    op: "scan",
                    what: format!(
                        "{x} channel blocks × batch {} exceed {lim} workgroups per dimension",
                        d.batch
                    ),
                });
            }
            [x as u32, d.batch as u32, 1]
        }
        _ => [
            crate::record::groups_for(d.batch * d.units(), 64, lim),
            1,
            1,
        ],
    })
}

/// Records the scan of `a`, `b` from `h0` in the direction `io` says.
/// Sequences larger than one storage binding are split into groups of whole
/// batch items (batch-first), each bound at its offset; the (B, D) states
/// are bound whole and indexed from the group's first item.
pub(super) fn record(
    scan: &Scan,
    dev: &Device,
    d: &Dims,
    [a, b]: [&Tensor; 2],
    h0: Option<&Tensor>,
    io: Io,
) -> Result<()> {
    let op = "scan";
    let plan = plan(scan, dev, d)?;
    let limits = &dev.info().limits;
    let max = limits.max_storage_buffer_binding_size;
    let item = (d.dtype.size() * d.sb) as u64; // bytes of one batch item (batch-first)
    let per = if a.bytes() <= max {
        d.batch
    } else if scan.layout == ScanLayout::BatchFirst
        && item <= max
        && item.is_multiple_of(limits.min_storage_buffer_offset_alignment as u64)
    {
        (max / item) as usize
    } else {
        return Err(Error::TooLarge {
            op,
            shape: a.shape().to_vec(),
            bytes: a.bytes(),
            limit_name: "max_storage_buffer_binding_size (splits need batch-first \
                         items of at most one binding, at aligned offsets)",
            limit: max,
        });
    };
    // Chunk summaries of one group (f32, reused by every group: the GPU runs
    // the groups in recording order).
    let sums = match plan.strategy {
        ScanStrategy::TimeParallel => Some(dev.alloc(
            op,
            &[per.min(d.batch) * plan.chunks * 2 * d.dim],
            DType::F32,
        )?),
        _ => None,
    };
    let h0b = h0.unwrap_or(a);
    let mut b0 = 0;
    while b0 < d.batch {
        let nb = per.min(d.batch - b0);
        let (off, len) = if per == d.batch {
            (0, a.bytes())
        } else {
            (b0 as u64 * item, nb as u64 * item)
        };
        let l = d.lanes();
        let p = Params {
            batch: u32_of(op, "batch", nb)?,
            steps: u32_of(op, "steps", d.steps)?,
            dim: u32_of(op, "channels", d.dim / l)?,
            sb: u32_of(op, "batch stride", d.sb / l)?,
            st: u32_of(op, "time stride", d.st / l)?,
            has_h0: h0.is_some() as u32,
            seg: u32_of(op, "chunk", plan.seg)?,
            b0: u32_of(op, "batch offset", b0)?,
            chunks: u32_of(op, "chunks", plan.chunks)?,
            ..Params::default()
        };
        let part = Dims { batch: nb, ..*d };
        let group = Group {
            scan,
            dev,
            plan: &plan,
            d: &part,
            p: &p,
            sums: sums.as_ref(),
        };
        let (a, bv, h0) = (seq(a, off, len), seq(b, off, len), h0b.into());
        match &io {
            Io::Forward { h, last } => group.forward(FwdBind {
                a,
                bv,
                h0,
                out: seq(h, off, len),
                last: (*last).into(),
            })?,
            Io::Backward { h, g, da, db, dh0 } => group.backward(BwdBind {
                a,
                bv,
                h0,
                hs: seq(h, off, len),
                g: seq(g, off, len),
                da: seq(da, off, len),
                db: seq(db, off, len),
                dh0: (*dh0).into(),
            })?,
        }
        b0 += nb;
    }
    Ok(())
}

fn seq(t: &Tensor, off: u64, len: u64) -> Bind<'_> {
    t.bind_range(off, len)
}

struct FwdBind<'a> {
    a: Bind<'a>,
    bv: Bind<'a>,
    h0: Bind<'a>,
    out: Bind<'a>,
    last: Bind<'a>,
}

struct BwdBind<'a> {
    a: Bind<'a>,
    bv: Bind<'a>,
    h0: Bind<'a>,
    hs: Bind<'a>,
    g: Bind<'a>,
    da: Bind<'a>,
    db: Bind<'a>,
    dh0: Bind<'a>,
}

/// One group of batch items being recorded.
struct Group<'a> {
    scan: &'a Scan,
    dev: &'a Device,
    plan: &'a Plan,
    d: &'a Dims,
    p: &'a Params,
    sums: Option<&'a Tensor>,
}

impl Group<'_> {
    fn key<'b, B: crate::bindings::Bindings<'b>>(&self) -> KernelKey {
        let sub = self.scan.subgroups
            && self.plan.strategy == ScanStrategy::Chunked
            && self.dev.info().subgroups_of_at_least(8);
        flags(self.scan, self.d, KernelKey::of::<B>()).flag("SUBGROUP", sub)
    }

    /// Workgroups of the reduce/apply passes and of the carry pass.
    fn tp_groups(&self) -> ([u32; 3], [u32; 3]) {
        let units = self.d.units() as u32;
        let (chunks, batch) = (self.plan.chunks as u32, self.d.batch as u32);
        ([units.div_ceil(64), chunks, batch], [units, batch, 1])
    }

    fn forward(&self, b: FwdBind) -> Result<()> {
        macro_rules! fwd {
            ($m:ident::$t:ident $(, $sums:expr)?) => {
                $m::$t {
                    a: b.a,
                    bv: b.bv,
                    h0: b.h0,
                    out: b.out,
                    last: b.last,
                    $(sums: $sums,)?
                }
            };
        }
        let (dev, p) = (self.dev, self.p);
        match (self.plan.strategy, self.sums) {
            (ScanStrategy::TimeParallel, Some(s)) => {
                let (cells, lanes) = self.tp_groups();
                let k1 = self.key::<tp::ScanTpReduce>();
                dev.launch(&k1, p, &fwd!(tp::ScanTpReduce, s.into()), cells)?;
                let k2 = self.key::<tp::ScanTpCarry>();
                dev.launch(&k2, p, &fwd!(tp::ScanTpCarry, s.into()), lanes)?;
                let k3 = self.key::<tp::ScanTpApply>();
                dev.launch(&k3, p, &fwd!(tp::ScanTpApply, s.into()), cells)
            }
            (ScanStrategy::Chunked, _) => {
                let g = groups(dev, self.plan, self.d)?;
                dev.launch(&self.key::<k::ScanChunked>(), p, &fwd!(k::ScanChunked), g)
            }
            _ => {
                let g = groups(dev, self.plan, self.d)?;
                dev.launch(&self.key::<k::ScanSerial>(), p, &fwd!(k::ScanSerial), g)
            }
        }
    }

    fn backward(&self, b: BwdBind) -> Result<()> {
        macro_rules! bwd {
            ($m:ident::$t:ident $(, $sums:expr)?) => {
                $m::$t {
                    a: b.a,
                    bv: b.bv,
                    h0: b.h0,
                    hs: b.hs,
                    g: b.g,
                    da: b.da,
                    db: b.db,
                    dh0: b.dh0,
                    $(sums: $sums,)?
                }
            };
        }
        let (dev, p) = (self.dev, self.p);
        match (self.plan.strategy, self.sums) {
            (ScanStrategy::TimeParallel, Some(s)) => {
                let (cells, lanes) = self.tp_groups();
                let k1 = self.key::<tp::ScanTpReduceBackward>();
                dev.launch(&k1, p, &bwd!(tp::ScanTpReduceBackward, s.into()), cells)?;
                let k2 = self.key::<tp::ScanTpCarryBackward>();
                dev.launch(&k2, p, &bwd!(tp::ScanTpCarryBackward, s.into()), lanes)?;
                let k3 = self.key::<tp::ScanTpApplyBackward>();
                dev.launch(&k3, p, &bwd!(tp::ScanTpApplyBackward, s.into()), cells)
            }
            (ScanStrategy::Chunked, _) => {
                let g = groups(dev, self.plan, self.d)?;
                let key = self.key::<k::ScanChunkedBackward>();
                dev.launch(&key, p, &bwd!(k::ScanChunkedBackward), g)
            }
            _ => {
                let g = groups(dev, self.plan, self.d)?;
                let key = self.key::<k::ScanSerialBackward>();
                dev.launch(&key, p, &bwd!(k::ScanSerialBackward), g)
            }
        }
    }
}

/// Every kernel variant the launcher can record.
pub(super) fn variants() -> Vec<KernelKey> {
    let mut v = Vec::new();
    let entries = [
        KernelKey::of::<k::ScanSerial>(),
        KernelKey::of::<k::ScanSerialBackward>(),
        KernelKey::of::<k::ScanChunked>(),
        KernelKey::of::<k::ScanChunkedBackward>(),
        KernelKey::of::<tp::ScanTpReduce>(),
        KernelKey::of::<tp::ScanTpReduceBackward>(),
        KernelKey::of::<tp::ScanTpCarry>(),
        KernelKey::of::<tp::ScanTpCarryBackward>(),
        KernelKey::of::<tp::ScanTpApply>(),
        KernelKey::of::<tp::ScanTpApplyBackward>(),
    ];
    for key in entries {
        let chunked = key.entry.starts_with("scan_chunked");
        for bits in 0..8 {
            let key = key
                .clone()
                .flag("LOG", bits & 1 != 0)
                .flag("VEC4", bits & 2 != 0)
                .flag("F16", bits & 4 != 0);
            if chunked {
                v.push(key.clone().flag("SUBGROUP", true));
            }
            v.push(key);
        }
    }
    v
}
