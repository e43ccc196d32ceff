// The common core of the first-order scans (scan.wgsl, scan_tp.wgsl):
// h_t = a_t ⊙ h_{t−1} + b_t over tensors addressed as (b, t, d) ->
// b * sb + t * st + d (batch-first (B, T, D) or time-major (T, B, D) through
// the strides). B = batch, T = steps, D = channels (in vec4s with VEC4).
//
// Defines (set by the including shader before `#import scan_core`):
//   BACKWARD  the reverse recurrence of the gradient, linear in both forms:
//             δ_t = g_t + c_{t+1} δ_{t+1}, with c = a (linear) or
//             w = exp(log a + log h_{t−1} − log h_t) (log), writing
//             linear: ∂a_t = δ_t h_{t−1}, ∂b_t = δ_t
//             log:    ∂log a_t = δ_t w_t, ∂log b_t = δ_t exp(log b_t − log h_t)
//             and ∂h0 = c_0 δ_0 (g already includes the gradient of the
//             final state).
// Defines (set by the launcher):
//   LOG       the log-space form (Heinsen 2023): inputs log a, log b, state
//             log h; a step is log h_t = logaddexp(log a_t + log h_{t−1}, log b_t).
//   VEC4      every invocation handles 4 adjacent channels as a vec4 (the
//             launcher passes dim and strides in vec4 units; D % 4 == 0).
//   F16       tensors are stored as f16 (SHADER_F16); all math is f32.
//
// A step is an affine map x -> m.m * x + m.c (log: logaddexp(m.m + x, m.c)),
// composed by `combine`, which is associative (tested on the host), so any
// grouping of time (serial, segments, chunks across workgroups) gives the
// same result up to rounding.

// `batch` items from item `b0` (the bound slices of the sequence tensors
// start at item b0; the (B, D) states are bound whole). `seg`: steps per
// segment (chunked) or per chunk (time-parallel); `chunks`: time chunks.
struct Params {
    batch: u32, steps: u32, dim: u32, sb: u32,
    st: u32, has_h0: u32, seg: u32, b0: u32,
    chunks: u32, _pad0: u32, _pad1: u32, _pad2: u32,
}

#import storage
#ifdef VEC4
alias V = vec4<f32>;
alias SV = vec4<S>;
#else
alias V = f32;
alias SV = S;
#endif

// x -> m * x + c, or logaddexp(m + x, c) in log space.
struct Map { m: V, c: V }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<SV>;   // (b, t, d): a or log a
@group(0) @binding(2) var<storage, read> bv: array<SV>;  // (b, t, d): b or log b
@group(0) @binding(3) var<storage, read> h0: array<SV>;  // (B, D), read when has_h0
#ifdef BACKWARD
@group(0) @binding(4) var<storage, read> hs: array<SV>;         // (b, t, d): forward outputs h or log h
@group(0) @binding(5) var<storage, read> g: array<SV>;          // (b, t, d): dL/d output
@group(0) @binding(6) var<storage, read_write> da: array<SV>;   // (b, t, d): dL/d a (or log a)
@group(0) @binding(7) var<storage, read_write> db: array<SV>;   // (b, t, d): dL/d b (or log b)
@group(0) @binding(8) var<storage, read_write> dh0: array<SV>;  // (B, D): dL/d h0, written when has_h0
#else
@group(0) @binding(4) var<storage, read_write> out: array<SV>;  // (b, t, d): h or log h
@group(0) @binding(5) var<storage, read_write> last: array<SV>; // (B, D): the final state
#endif

// log 0, kept finite so that differences of two "zeros" stay defined.
const NEG: f32 = -3.0e38;

fn idx(b: u32, t: u32, d: u32) -> u32 { return b * p.sb + t * p.st + d; }

// A stored value, clamped to f16's range when storage is f16 (log 0 then
// stays a large negative number instead of −inf).
fn put(x: V) -> SV {
#ifdef F16
    return SV(clamp(x, V(-65504.0), V(65504.0)));
#else
    return x;
#endif
}

fn lae(x: V, y: V) -> V {
    let m = max(x, y);
    return m + log(1.0 + exp(min(x, y) - m));
}

// The forward's state before step 0.
fn initial(b: u32, d: u32) -> V {
    if p.has_h0 != 0u { return V(h0[(p.b0 + b) * p.dim + d]); }
#ifdef LOG
    return V(NEG);
#else
    return V(0.0);
#endif
}

#ifdef BACKWARD
// The backward's maps are linear in both forms.
#define LINEAR_MAPS
#else
#ifndef LOG
#define LINEAR_MAPS
#endif
#endif

#ifdef LINEAR_MAPS
fn identity() -> Map { return Map(V(1.0), V(0.0)); }
fn combine(x: Map, y: Map) -> Map { return Map(x.m * y.m, y.m * x.c + y.c); }
fn apply(f: Map, h: V) -> V { return f.m * h + f.c; }
#else
fn identity() -> Map { return Map(V(0.0), V(NEG)); }
fn combine(x: Map, y: Map) -> Map { return Map(x.m + y.m, lae(y.m + x.c, y.c)); }
fn apply(f: Map, h: V) -> V { return lae(f.m + h, f.c); }
#endif

#ifdef BACKWARD
// Virtual step u visits time T − 1 − u.
fn time_of(u: u32) -> u32 { return p.steps - 1u - u; }

fn h_prev(b: u32, t: u32, d: u32) -> V {
    if t == 0u { return initial(b, d); }
    return V(hs[idx(b, t - 1u, d)]);
}

// c_t: how h_t depends on h_{t−1}.
fn coef(b: u32, t: u32, d: u32) -> V {
    let i = idx(b, t, d);
#ifdef LOG
    return exp(V(a[i]) + h_prev(b, t, d) - V(hs[i]));
#else
    return V(a[i]);
#endif
}

fn step_map(b: u32, t: u32, d: u32) -> Map {
    var c = V(0.0);
    if t + 1u < p.steps { c = coef(b, t + 1u, d); }
    return Map(c, V(g[idx(b, t, d)]));
}

fn emit(b: u32, t: u32, d: u32, delta: V) {
    let i = idx(b, t, d);
    // h_0 = a_0 h0 + b_0 (log: w_0 weighs log h0): dL/dh0 = c_0 δ_0.
    if t == 0u && p.has_h0 != 0u { dh0[(p.b0 + b) * p.dim + d] = put(delta * coef(b, 0u, d)); }
#ifdef LOG
    da[i] = put(delta * coef(b, t, d));
    db[i] = put(delta * exp(V(bv[i]) - V(hs[i])));
#else
    da[i] = put(delta * h_prev(b, t, d));
    db[i] = put(delta);
#endif
}

fn start(b: u32, d: u32) -> V { return V(0.0); }

fn finish(b: u32, d: u32, x: V) {}
#else
fn time_of(u: u32) -> u32 { return u; }

fn step_map(b: u32, t: u32, d: u32) -> Map {
    let i = idx(b, t, d);
    return Map(V(a[i]), V(bv[i]));
}

fn emit(b: u32, t: u32, d: u32, h: V) { out[idx(b, t, d)] = put(h); }

fn start(b: u32, d: u32) -> V { return initial(b, d); }

fn finish(b: u32, d: u32, x: V) { last[(p.b0 + b) * p.dim + d] = put(x); }
#endif
