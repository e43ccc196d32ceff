// GEMM: C = act(alpha * op(A) op(B) + beta * C + bias), batched.
// M, N, K = rows of op(A), columns of op(B), inner dimension; Z = batch.
// A is (Z, M, K) or with TRANS_A (Z, K, M); B is (Z, K, N) or with TRANS_B
// (Z, N, K); leading dimensions and batch strides come in the params, so
// views with padding work. Bias (N) is added to every row when BIAS is set.
//
// `gemm` (tiled): an 8x8 workgroup computes a 64x64 tile of C, each
// invocation an 8x8 register block held in sixteen vec4 accumulators;
// 64xBK slabs of op(A) and BKx64 slabs of op(B) are staged k-major in
// workgroup memory so the inner loop reads four vec4s and does 64 FMAs.
// `gemm_naive`: one output per invocation, the baseline the benches compare to.
#import activations

struct Params {
    m: u32, n: u32, k: u32, batch: u32,
    lda: u32, ldb: u32, ldc: u32, act: u32,
    stride_a: u32, stride_b: u32, stride_c: u32, use_beta: u32,
    alpha: f32, beta: f32, _pad0: u32, _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;        // (Z, M, K) or (Z, K, M)
@group(0) @binding(2) var<storage, read> b: array<f32>;        // (Z, K, N) or (Z, N, K)
@group(0) @binding(3) var<storage, read_write> c: array<f32>;  // (Z, M, N)
#ifdef BIAS
@group(0) @binding(4) var<storage, read> bias: array<f32>;     // (N)
#endif

// op(A)[z, m, kk], zero outside the matrix.
fn load_a(z: u32, m: u32, kk: u32) -> f32 {
    if m >= p.m || kk >= p.k { return 0.0; }
#ifdef TRANS_A
    return a[z * p.stride_a + kk * p.lda + m];
#else
    return a[z * p.stride_a + m * p.lda + kk];
#endif
}

// op(B)[z, kk, n], zero outside the matrix.
fn load_b(z: u32, kk: u32, n: u32) -> f32 {
    if n >= p.n || kk >= p.k { return 0.0; }
#ifdef TRANS_B
    return b[z * p.stride_b + n * p.ldb + kk];
#else
    return b[z * p.stride_b + kk * p.ldb + n];
#endif
}

fn store_c(z: u32, m: u32, n: u32, v: f32) {
    if m >= p.m || n >= p.n { return; }
    let i = z * p.stride_c + m * p.ldc + n;
    var r = p.alpha * v;
    if p.use_beta != 0u { r += p.beta * c[i]; }
#ifdef BIAS
    r += bias[n];
#endif
    c[i] = activate(r, p.act);
}

// K depth of a staged slab; 32 keeps both slabs in 16 KiB (WebGPU's default).
#define BK 32u
var<workgroup> tile_a: array<vec4<f32>, BK * 16u>;  // [k][m / 4]: BK x 64 floats
var<workgroup> tile_b: array<vec4<f32>, BK * 16u>;  // [k][n / 4]: BK x 64 floats

fn store_row(z: u32, m: u32, n: u32, lo: vec4<f32>, hi: vec4<f32>) {
    store_c(z, m, n, lo.x); store_c(z, m, n + 1u, lo.y);
    store_c(z, m, n + 2u, lo.z); store_c(z, m, n + 3u, lo.w);
    store_c(z, m, n + 4u, hi.x); store_c(z, m, n + 5u, hi.y);
    store_c(z, m, n + 6u, hi.z); store_c(z, m, n + 7u, hi.w);
}

// 64 invocations (8 x 8), each an 8 x 8 block of a 64 x 64 tile of C. Few
// invocations per workgroup keep barriers cheap on CPU drivers (lavapipe
// runs a workgroup as fibers of 8 lanes and switches all of them at each
// barrier); the 8 x 8 register block gives 64 FMAs per four vec4 reads.
@compute @workgroup_size(8, 8, 1)
fn gemm(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let z = wid.z;
    let m0 = wid.y * 64u;
    let n0 = wid.x * 64u;
    let t = lid.y * 8u + lid.x;
    var c0l = vec4<f32>(0.0);
    var c0h = vec4<f32>(0.0);
    var c1l = vec4<f32>(0.0);
    var c1h = vec4<f32>(0.0);
    var c2l = vec4<f32>(0.0);
    var c2h = vec4<f32>(0.0);
    var c3l = vec4<f32>(0.0);
    var c3h = vec4<f32>(0.0);
    var c4l = vec4<f32>(0.0);
    var c4h = vec4<f32>(0.0);
    var c5l = vec4<f32>(0.0);
    var c5h = vec4<f32>(0.0);
    var c6l = vec4<f32>(0.0);
    var c6h = vec4<f32>(0.0);
    var c7l = vec4<f32>(0.0);
    var c7h = vec4<f32>(0.0);
    for (var k0 = 0u; k0 < p.k; k0 += BK) {
        // Stage a 64 x 16 slab of op(A) and a 16 x 64 slab of op(B), k-major.
        // Invocation t stages row t of the op(A) slab and column t of the
        // op(B) slab (consecutive invocations read consecutive addresses of
        // a row-major B).
        for (var j = 0u; j < BK; j++) {
            tile_a[j * 16u + t / 4u][t % 4u] = load_a(z, m0 + t, k0 + j);
            tile_b[j * 16u + t / 4u][t % 4u] = load_b(z, k0 + j, n0 + t);
        }
        workgroupBarrier();
        for (var kk = 0u; kk < BK; kk++) {
            let al = tile_a[kk * 16u + lid.y * 2u];
            let ah = tile_a[kk * 16u + lid.y * 2u + 1u];
            let bl = tile_b[kk * 16u + lid.x * 2u];
            let bh = tile_b[kk * 16u + lid.x * 2u + 1u];
            c0l = fma(vec4<f32>(al.x), bl, c0l);
            c0h = fma(vec4<f32>(al.x), bh, c0h);
            c1l = fma(vec4<f32>(al.y), bl, c1l);
            c1h = fma(vec4<f32>(al.y), bh, c1h);
            c2l = fma(vec4<f32>(al.z), bl, c2l);
            c2h = fma(vec4<f32>(al.z), bh, c2h);
            c3l = fma(vec4<f32>(al.w), bl, c3l);
            c3h = fma(vec4<f32>(al.w), bh, c3h);
            c4l = fma(vec4<f32>(ah.x), bl, c4l);
            c4h = fma(vec4<f32>(ah.x), bh, c4h);
            c5l = fma(vec4<f32>(ah.y), bl, c5l);
            c5h = fma(vec4<f32>(ah.y), bh, c5h);
            c6l = fma(vec4<f32>(ah.z), bl, c6l);
            c6h = fma(vec4<f32>(ah.z), bh, c6h);
            c7l = fma(vec4<f32>(ah.w), bl, c7l);
            c7h = fma(vec4<f32>(ah.w), bh, c7h);
        }
        workgroupBarrier();
    }
    let m = m0 + lid.y * 8u;
    let n = n0 + lid.x * 8u;
    store_row(z, m + 0u, n, c0l, c0h);
    store_row(z, m + 1u, n, c1l, c1h);
    store_row(z, m + 2u, n, c2l, c2h);
    store_row(z, m + 3u, n, c3l, c3h);
    store_row(z, m + 4u, n, c4l, c4h);
    store_row(z, m + 5u, n, c5l, c5h);
    store_row(z, m + 6u, n, c6l, c6h);
    store_row(z, m + 7u, n, c7l, c7h);
}

@compute @workgroup_size(16, 16, 1)
fn gemm_naive(@builtin(global_invocation_id) gid: vec3<u32>) {
    let n = gid.x;
    let m = gid.y;
    let z = gid.z;
    if m >= p.m || n >= p.n { return; }
    var acc = 0.0;
    for (var kk = 0u; kk < p.k; kk++) {
        acc += load_a(z, m, kk) * load_b(z, kk, n);
    }
    store_c(z, m, n, acc);
}

