// First-order linear recurrences over time, h_t = a_t ⊙ h_{t−1} + b_t, for
// tensors addressed as (b, t, d) -> b * sb + t * st + d (batch-first
// (B, T, D) or time-major (T, B, D) through the strides).
//
// Flags:
//   LOG       the log-space form (Heinsen 2023): inputs log a, log b, state
//             log h; a step is log h_t = logaddexp(log a_t + log h_{t−1}, log b_t).
//   BACKWARD  the reverse recurrence of the gradient, linear in both forms:
//             δ_t = g_t + c_{t+1} δ_{t+1}, with c = a (linear) or
//             w = exp(log a + log h_{t−1} − log h_t) (log), writing
//             linear: ∂a_t = δ_t h_{t−1}, ∂b_t = δ_t
//             log:    ∂log a_t = δ_t w_t, ∂log b_t = δ_t exp(log b_t − log h_t)
//             and ∂h0 = c_0 δ_0 (g already includes the gradient of the
//             final state).
//   SUBGROUP  the chunked kernel scans across segments with subgroup
//             shuffles (8-lane groups inside subgroups of ≥ 8) instead of
//             workgroup memory.
//   VEC4      every invocation handles 4 adjacent channels as a vec4 (the
//             launcher passes dim and strides in vec4 units; D % 4 == 0):
//             full cache lines per step on CPU adapters.
//
// Entries:
//   scan_serial   one invocation per (b, d) walks the sequence (parallel over
//                 batch × channels; best when B·D fills the device).
//   scan_chunked  a workgroup per (b, 8 channels): 8 segments of `seg` steps
//                 per channel summarise their affine maps, scan them across
//                 segments, then replay with the carried-in state; chunks of
//                 8·seg steps follow each other inside the workgroup. No
//                 workgroup waits for another.
// A step is an affine map x -> m.m * x + m.c (log: logaddexp(m.m + x, m.c)),
// composed by `combine`, which is associative (tested on the host).

// `batch` items from item `b0` (the bound slices of the sequence tensors
// start at item b0; h0 and `last` are bound whole).
struct Params {
    batch: u32, steps: u32, dim: u32, sb: u32,
    st: u32, has_h0: u32, seg: u32, b0: u32,
}

#ifdef VEC4
alias V = vec4<f32>;
#else
alias V = f32;
#endif

// x -> m * x + c, or logaddexp(m + x, c) in log space.
struct Map { m: V, c: V }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<V>;   // (b, t, d): a or log a
@group(0) @binding(2) var<storage, read> bv: array<V>;  // (b, t, d): b or log b
@group(0) @binding(3) var<storage, read> h0: array<V>;  // (B, D), read when has_h0
#ifdef BACKWARD
@group(0) @binding(4) var<storage, read> hs: array<V>;         // forward outputs h or log h
@group(0) @binding(5) var<storage, read> g: array<V>;          // dL/d output
@group(0) @binding(6) var<storage, read_write> da: array<V>;   // dL/d a (or log a)
@group(0) @binding(7) var<storage, read_write> db: array<V>;   // dL/d b (or log b) = δ (linear)
@group(0) @binding(8) var<storage, read_write> dh0: array<V>;  // (B, D): dL/d h0, written when has_h0
#else
@group(0) @binding(4) var<storage, read_write> out: array<V>;  // h or log h
@group(0) @binding(5) var<storage, read_write> last: array<V>; // (B, D): the final state
#endif

// log 0, kept finite so that differences of two "zeros" stay defined.
const NEG: f32 = -3.0e38;

fn idx(b: u32, t: u32, d: u32) -> u32 { return b * p.sb + t * p.st + d; }

fn lae(x: V, y: V) -> V {
    let m = max(x, y);
    return m + log(1.0 + exp(min(x, y) - m));
}

// The forward's state before step 0.
fn initial(b: u32, d: u32) -> V {
    if p.has_h0 != 0u { return h0[(p.b0 + b) * p.dim + d]; }
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
    return hs[idx(b, t - 1u, d)];
}

// c_t: how h_t depends on h_{t−1}.
fn coef(b: u32, t: u32, d: u32) -> V {
    let i = idx(b, t, d);
#ifdef LOG
    return exp(a[i] + h_prev(b, t, d) - hs[i]);
#else
    return a[i];
#endif
}

fn step_map(b: u32, t: u32, d: u32) -> Map {
    var c = V(0.0);
    if t + 1u < p.steps { c = coef(b, t + 1u, d); }
    return Map(c, g[idx(b, t, d)]);
}

fn emit(b: u32, t: u32, d: u32, delta: V) {
    let i = idx(b, t, d);
    // h_0 = a_0 h0 + b_0 (log: w_0 weighs log h0): dL/dh0 = c_0 δ_0.
    if t == 0u && p.has_h0 != 0u { dh0[(p.b0 + b) * p.dim + d] = delta * coef(b, 0u, d); }
#ifdef LOG
    da[i] = delta * coef(b, t, d);
    db[i] = delta * exp(bv[i] - hs[i]);
#else
    da[i] = delta * h_prev(b, t, d);
    db[i] = delta;
#endif
}

fn start(b: u32, d: u32) -> V { return V(0.0); }
#else
fn time_of(u: u32) -> u32 { return u; }

fn step_map(b: u32, t: u32, d: u32) -> Map {
    let i = idx(b, t, d);
    return Map(a[i], bv[i]);
}

fn emit(b: u32, t: u32, d: u32, h: V) { out[idx(b, t, d)] = h; }

fn start(b: u32, d: u32) -> V { return initial(b, d); }
#endif

fn finish(b: u32, d: u32, x: V) {
#ifndef BACKWARD
    last[(p.b0 + b) * p.dim + d] = x;
#endif
}

#ifdef SCAN_SERIAL
@compute @workgroup_size(64)
fn scan_serial(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let n = p.batch * p.dim;
    for (var i = gid.x; i < n; i += nwg.x * 64u) {
        let b = i / p.dim;
        let d = i % p.dim;
        var x = start(b, d);
        for (var u = 0u; u < p.steps; u++) {
            let t = time_of(u);
            x = apply(step_map(b, t, d), x);
            emit(b, t, d, x);
        }
        finish(b, d, x);
    }
}
#endif

#ifdef SCAN_CHUNKED
#ifndef SUBGROUP
var<workgroup> part: array<Map, 64>;
#endif

@compute @workgroup_size(64)
fn scan_chunked(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>
#ifdef SUBGROUP
                , @builtin(subgroup_invocation_id) sg: u32
#endif
                ) {
    let s = lid % 8u;             // segment within the chunk
    let d = wid.x * 8u + lid / 8u; // channel
    let b = wid.y;
    let valid = d < p.dim;
    var carry = V(0.0);
    if valid { carry = start(b, d); }
    let k = p.seg;
    for (var c0 = 0u; c0 < p.steps; c0 += 8u * k) {
        let u0 = min(c0 + s * k, p.steps);
        let u1 = min(u0 + k, p.steps);
        // Pass 1: this segment's map.
        var m = identity();
        if valid {
            for (var u = u0; u < u1; u++) { m = combine(m, step_map(b, time_of(u), d)); }
        }
        // Inclusive scan of the 8 segments' maps, then exclusive by one.
        var incl = m;
#ifdef SUBGROUP
        for (var off = 1u; off < 8u; off <<= 1u) {
            let o = Map(subgroupShuffleUp(incl.m, off), subgroupShuffleUp(incl.c, off));
            if s >= off { incl = combine(o, incl); }
        }
        var excl = Map(subgroupShuffleUp(incl.m, 1u), subgroupShuffleUp(incl.c, 1u));
        if s == 0u { excl = identity(); }
        let base = sg - s;
        let total = Map(subgroupShuffle(incl.m, base + 7u), subgroupShuffle(incl.c, base + 7u));
#else
        for (var off = 1u; off < 8u; off <<= 1u) {
            part[lid] = incl;
            workgroupBarrier();
            if s >= off { incl = combine(part[lid - off], incl); }
            workgroupBarrier();
        }
        part[lid] = incl;
        workgroupBarrier();
        var excl = identity();
        if s > 0u { excl = part[lid - 1u]; }
        let total = part[lid - s + 7u];
        workgroupBarrier();
#endif
        // Pass 2: replay from the state entering this segment.
        if valid {
            var x = apply(excl, carry);
            for (var u = u0; u < u1; u++) {
                let t = time_of(u);
                x = apply(step_map(b, t, d), x);
                emit(b, t, d, x);
            }
        }
        carry = apply(total, carry);
    }
    if valid && s == 0u { finish(b, d, carry); }
}
#endif
