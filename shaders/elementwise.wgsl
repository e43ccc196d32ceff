// Elementwise kernels: activations and their backward, binary ops with a
// broadcast of b over the axes before and after its own, affine scale, fill, and f32 <-> f16 casts.
// N = elements of the output. Every entry loops with a grid stride, so any N
// fits the adapter's workgroup-count limit.
#import activations

struct Params {
    n: u32,      // elements of the output
    nb: u32,     // elements of the second operand (broadcast: b[(i / inner) % nb])
    op: u32,     // activation code or binary op code
    _pad: u32,
    alpha: f32,
    beta: f32,
    inner: u32,  // elements of the output's axes after b's (1: b is trailing)
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;

const WG: u32 = 256u;

fn stride(nwg: vec3<u32>) -> u32 {
    return nwg.x * WG;
}

#ifdef FILL
@group(0) @binding(1) var<storage, read_write> y: array<f32>;  // (N)

@compute @workgroup_size(256)
fn fill(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    for (var i = gid.x; i < p.n; i += stride(nwg)) {
        y[i] = p.alpha;
    }
}
#endif

#ifdef DROPOUT_MASK
@group(0) @binding(1) var<storage, read_write> y: array<f32>;  // (N)

// Wellons' lowbias32 integer hash.
fn hash32(x: u32) -> u32 {
    var h = x;
    h ^= h >> 16u;
    h *= 0x7feb352du;
    h ^= h >> 15u;
    h *= 0x846ca68bu;
    h ^= h >> 16u;
    return h;
}

// Inverted-dropout mask from a 64-bit seed (op = low word, _pad = high):
// y = beta (= 1/keep) where the element's uniform < alpha (= keep), else 0.
@compute @workgroup_size(256)
fn dropout_mask(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let s = hash32(p.op);
    for (var i = gid.x; i < p.n; i += stride(nwg)) {
        let h = hash32(hash32(i + s) ^ p._pad);
        let u = f32(h >> 8u) * (1.0 / 16777216.0);
        y[i] = select(0.0, p.beta, u < p.alpha);
    }
}
#endif

#ifdef UNARY
@group(0) @binding(1) var<storage, read> x: array<f32>;        // (N)
@group(0) @binding(2) var<storage, read_write> y: array<f32>;  // (N)

// y = act(alpha * x + beta)
@compute @workgroup_size(256)
fn unary(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    for (var i = gid.x; i < p.n; i += stride(nwg)) {
        y[i] = activate(p.alpha * x[i] + p.beta, p.op);
    }
}
#endif

#ifdef UNARY_BACKWARD
@group(0) @binding(1) var<storage, read> x: array<f32>;         // (N) forward input
@group(0) @binding(2) var<storage, read> dy: array<f32>;        // (N)
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;  // (N)

// dx = dy * act'(x)
@compute @workgroup_size(256)
fn unary_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    for (var i = gid.x; i < p.n; i += stride(nwg)) {
        dx[i] = dy[i] * activate_grad(x[i], p.op);
    }
}
#endif

#ifdef BINARY
@group(0) @binding(1) var<storage, read> a: array<f32>;        // (N)
@group(0) @binding(2) var<storage, read> b: array<f32>;        // (NB), NB divides N
@group(0) @binding(3) var<storage, read_write> c: array<f32>;  // (N)

// op 0: a + alpha*b, 1: a - alpha*b, 2: a * b, 3: a / b
@compute @workgroup_size(256)
fn binary(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    for (var i = gid.x; i < p.n; i += stride(nwg)) {
        let bv = b[(i / p.inner) % p.nb];
        var r: f32;
        switch p.op {
            case 0u: { r = a[i] + p.alpha * bv; }
            case 1u: { r = a[i] - p.alpha * bv; }
            case 2u: { r = a[i] * bv; }
            default: { r = a[i] / bv; }
        }
        c[i] = r;
    }
}
#endif

#ifdef CAST_TO_F16
@group(0) @binding(1) var<storage, read> x: array<f32>;        // (N)
@group(0) @binding(2) var<storage, read_write> y: array<u32>;  // (ceil(N/2)) f16 pairs

@compute @workgroup_size(256)
fn cast_to_f16(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let words = (p.n + 1u) / 2u;
    for (var i = gid.x; i < words; i += stride(nwg)) {
        let hi = select(0.0, x[min(2u * i + 1u, p.n - 1u)], 2u * i + 1u < p.n);
        y[i] = pack2x16float(vec2<f32>(x[2u * i], hi));
    }
}
#endif

#ifdef CAST_TO_F32
@group(0) @binding(1) var<storage, read> x: array<u32>;        // (ceil(N/2)) f16 pairs
@group(0) @binding(2) var<storage, read_write> y: array<f32>;  // (N)

@compute @workgroup_size(256)
fn cast_to_f32(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    for (var i = gid.x; i < p.n; i += stride(nwg)) {
        let pair = unpack2x16float(x[i / 2u]);
        y[i] = select(pair.x, pair.y, (i & 1u) == 1u);
    }
}
#endif
