// Fused optimizer updates and gradient clipping, in place, one dispatch per
// parameter tensor. N = elements of the parameter. The effective gradient
// is grad * scale[0], where `scale` comes from `clip_scale` (global-norm
// clipping without a readback) or holds 1.
// `adam_step`: Adam (L2 weight decay) or, with DECOUPLED, AdamW
//   (Loshchilov & Hutter 2019), as torch.optim.Adam / AdamW.
// `sgd_step`: SGD with momentum, dampening, Nesterov and weight decay, as
//   torch.optim.SGD.
// `clip_scale`: scale[0] = min(1, max_norm / (norm[0] + 1e-6)) (Pascanu et
//   al. 2013; PyTorch's clip_grad_norm_).
// `clip_value`: grad = clamp(grad, -c, c).

struct Params {
    n: u32, flags: u32, _pad0: u32, _pad1: u32,
    lr: f32, beta1: f32, beta2: f32, eps: f32,          // SGD: beta1 = momentum, beta2 = dampening
    weight_decay: f32, bc1: f32, bc2: f32, value: f32,  // bc = 1 - beta^t; value: max_norm or clip value
}

const FLAG_DECOUPLED: u32 = 1u;
const FLAG_NESTEROV: u32 = 2u;
const FLAG_FIRST: u32 = 4u;   // first SGD step: momentum buffer = grad

@group(0) @binding(0) var<uniform> p: Params;

#ifdef ADAM_STEP
@group(0) @binding(1) var<storage, read_write> param: array<f32>;  // (N)
@group(0) @binding(2) var<storage, read> grad: array<f32>;         // (N)
@group(0) @binding(3) var<storage, read_write> m: array<f32>;      // (N) first moment
@group(0) @binding(4) var<storage, read_write> v: array<f32>;      // (N) second moment
@group(0) @binding(5) var<storage, read> scale: array<f32>;        // (1)

@compute @workgroup_size(256)
fn adam_step(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let s = scale[0];
    for (var i = gid.x; i < p.n; i += nwg.x * 256u) {
        var w = param[i];
        var g = grad[i] * s;
        if (p.flags & FLAG_DECOUPLED) != 0u {
            w *= 1.0 - p.lr * p.weight_decay;
        } else {
            g += p.weight_decay * w;
        }
        let mi = p.beta1 * m[i] + (1.0 - p.beta1) * g;
        let vi = p.beta2 * v[i] + (1.0 - p.beta2) * g * g;
        m[i] = mi;
        v[i] = vi;
        param[i] = w - p.lr * (mi / p.bc1) / (sqrt(vi / p.bc2) + p.eps);
    }
}
#endif

#ifdef SGD_STEP
@group(0) @binding(1) var<storage, read_write> param: array<f32>;  // (N)
@group(0) @binding(2) var<storage, read> grad: array<f32>;         // (N)
@group(0) @binding(3) var<storage, read_write> buf: array<f32>;    // (N) momentum buffer
@group(0) @binding(4) var<storage, read> scale: array<f32>;        // (1)

@compute @workgroup_size(256)
fn sgd_step(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let s = scale[0];
    for (var i = gid.x; i < p.n; i += nwg.x * 256u) {
        let w = param[i];
        var g = grad[i] * s + p.weight_decay * w;
        if p.beta1 != 0.0 {
            var b = g;
            if (p.flags & FLAG_FIRST) == 0u {
                b = p.beta1 * buf[i] + (1.0 - p.beta2) * g;
            }
            buf[i] = b;
            g = select(b, g + p.beta1 * b, (p.flags & FLAG_NESTEROV) != 0u);
        }
        param[i] = w - p.lr * g;
    }
}
#endif

#ifdef CLIP_SCALE
@group(0) @binding(1) var<storage, read> norm: array<f32>;          // (1) global L2 norm
@group(0) @binding(2) var<storage, read_write> scale: array<f32>;   // (1)

@compute @workgroup_size(1)
fn clip_scale() {
    scale[0] = min(1.0, p.value / (norm[0] + 1e-6));
}
#endif

#ifdef CLIP_VALUE
@group(0) @binding(1) var<storage, read_write> grad: array<f32>;  // (N)

@compute @workgroup_size(256)
fn clip_value(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    for (var i = gid.x; i < p.n; i += nwg.x * 256u) {
        grad[i] = clamp(grad[i], -p.value, p.value);
    }
}
#endif
