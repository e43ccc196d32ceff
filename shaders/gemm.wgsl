// GEMM: C = act(alpha * op(A) op(B) + beta * C + bias), batched.
// M, N, K = rows of op(A), columns of op(B), inner dimension; Z = batch.
// A is (Z, M, K) or with TRANS_A (Z, K, M); B is (Z, K, N) or with TRANS_B
// (Z, N, K); leading dimensions and batch strides come in the params, so
// views with padding work. Bias (N) is added to every row when BIAS is set.
//
// `gemm` (tiled): a 16x16 workgroup computes a 64x64 tile of C, each
// invocation a 4x4 register block held in four vec4 accumulators; 64x16
// slabs of op(A) and 16x64 slabs of op(B) are staged k-major in workgroup
// memory so the inner loop reads one vec4 of each and does 16 FMAs.
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

const BK: u32 = 16u;
var<workgroup> tile_a: array<vec4<f32>, 256>;  // [k][m / 4], 16 x 16 vec4
var<workgroup> tile_b: array<vec4<f32>, 256>;  // [k][n / 4], 16 x 16 vec4

@compute @workgroup_size(16, 16, 1)
fn gemm(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let z = wid.z;
    let m0 = wid.y * 64u;
    let n0 = wid.x * 64u;
    let t = lid.y * 16u + lid.x;
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var k0 = 0u; k0 < p.k; k0 += BK) {
        // Each invocation stages four values of each slab.
#ifdef TRANS_A
        {   // contiguous along m: one vec4 per invocation
            let kk = t / 16u;
            let mq = (t % 16u) * 4u;
            tile_a[kk * 16u + mq / 4u] = vec4<f32>(
                load_a(z, m0 + mq, k0 + kk), load_a(z, m0 + mq + 1u, k0 + kk),
                load_a(z, m0 + mq + 2u, k0 + kk), load_a(z, m0 + mq + 3u, k0 + kk));
        }
#else
        {   // contiguous along k: four rows of the k-major tile
            let m = t / 4u;
            let kq = (t % 4u) * 4u;
            for (var j = 0u; j < 4u; j++) {
                tile_a[(kq + j) * 16u + m / 4u][m % 4u] = load_a(z, m0 + m, k0 + kq + j);
            }
        }
#endif
#ifdef TRANS_B
        {
            let n = t / 4u;
            let kq = (t % 4u) * 4u;
            for (var j = 0u; j < 4u; j++) {
                tile_b[(kq + j) * 16u + n / 4u][n % 4u] = load_b(z, k0 + kq + j, n0 + n);
            }
        }
#else
        {
            let kk = t / 16u;
            let nq = (t % 16u) * 4u;
            tile_b[kk * 16u + nq / 4u] = vec4<f32>(
                load_b(z, k0 + kk, n0 + nq), load_b(z, k0 + kk, n0 + nq + 1u),
                load_b(z, k0 + kk, n0 + nq + 2u), load_b(z, k0 + kk, n0 + nq + 3u));
        }
#endif
        workgroupBarrier();
        for (var kk = 0u; kk < BK; kk++) {
            let av = tile_a[kk * 16u + lid.y];
            let bv = tile_b[kk * 16u + lid.x];
            acc0 = fma(vec4<f32>(av.x), bv, acc0);
            acc1 = fma(vec4<f32>(av.y), bv, acc1);
            acc2 = fma(vec4<f32>(av.z), bv, acc2);
            acc3 = fma(vec4<f32>(av.w), bv, acc3);
        }
        workgroupBarrier();
    }
    let m = m0 + lid.y * 4u;
    let n = n0 + lid.x * 4u;
    let rows = array<vec4<f32>, 4>(acc0, acc1, acc2, acc3);
    for (var i = 0u; i < 4u; i++) {
        for (var j = 0u; j < 4u; j++) {
            store_c(z, m + i, n + j, rows[i][j]);
        }
    }
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
