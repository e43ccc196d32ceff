#!/usr/bin/env python3
"""Golden fixtures for recur's Mamba from independent implementations.

1. tests/fixtures/mamba/model.safetensors (+ config.json): a tiny Hugging Face
   transformers `MambaForCausalLM` (its pure-PyTorch path, which is what runs
   on a CPU), written with its own `save_pretrained(safe_serialization=True)`:
   the file a user would have. A_log, D and the norms are perturbed from
   their initial values so that the test does not only see defaults.
   tests/fixtures/mamba/expected.safetensors: `input_ids` (B, L) as float32,
   `logits` (B, L, V), `w` (the weights of the loss L = sum(logits * w)),
   and `grad.<name>` for every parameter under Hugging Face's names; and
   Hugging Face's inference cache after prompts of 7 and 2 tokens (the
   second shorter than d_conv), `cache<P>.conv.<layer>` (B, d_inner,
   d_conv) and `cache<P>.ssm.<layer>` (B, d_inner, d_state), with
   `cache<P>.next_logits`: the logits of the remaining tokens run from
   that cache (eval mode, no grad).

2. tests/fixtures/selective_scan.safetensors: the bare selective scan from a
   float64 transcription of mamba_ssm's `selective_scan_ref` semantics (a
   sequential loop over time; grouped B and C, D, z, delta_bias, softplus, and
   an initial state, which `selective_scan_ref` lacks), with every gradient
   of L = sum(out * w_out) + sum(last * w_last) from torch.autograd.

Run: /opt/venv/bin/python tools/make_mamba_fixtures.py
     (the venv: pip install torch transformers safetensors)
"""
import os

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from transformers import MambaConfig, MambaForCausalLM

ROOT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures")


def hf_model():
    torch.manual_seed(0)
    cfg = MambaConfig(
        vocab_size=19, hidden_size=16, state_size=4, num_hidden_layers=2, conv_kernel=4,
        expand=2, use_conv_bias=True, use_bias=False, layer_norm_epsilon=1e-5,
        tie_word_embeddings=True,
    )
    model = MambaForCausalLM(cfg).float()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("A_log") or name.endswith(".D") or "norm" in name:
                p.add_(0.1 * torch.randn_like(p))
    model.train()
    ids = torch.randint(0, cfg.vocab_size, (2, 11))
    logits = model(ids).logits
    w = torch.randn_like(logits)
    (logits * w).sum().backward()
    out = os.path.join(ROOT, "mamba")
    model.save_pretrained(out, safe_serialization=True)
    gen = os.path.join(out, "generation_config.json")
    if os.path.exists(gen):
        os.remove(gen)
    tensors = {"input_ids": ids.float(), "logits": logits.detach(), "w": w}
    for name, p in model.named_parameters():
        tensors["grad." + name] = p.grad.detach().clone()
    model.eval()
    with torch.no_grad():
        for prompt in (7, 2):
            cache = model(ids[:, :prompt], use_cache=True).cache
            for layer in range(cfg.num_hidden_layers):
                tensors[f"cache{prompt}.conv.{layer}"] = cache.get_conv_state(layer, state_idx=0).clone()
                tensors[f"cache{prompt}.ssm.{layer}"] = cache.get_recurrent_state(layer, state_idx=0).clone()
            rest = model(ids[:, prompt:], cache=cache, use_cache=True).logits
            tensors[f"cache{prompt}.next_logits"] = rest
    save_file({k: v.contiguous() for k, v in tensors.items()}, os.path.join(out, "expected.safetensors"))
    print("wrote", out, [n for n, _ in model.named_parameters()])


def scan_ref(u, delta, A, B, C, D, z, delta_bias, h0):
    """out, last for u, delta, z (Bt, Dd, L), A (Dd, N), B, C (Bt, G, N, L)."""
    delta = F.softplus(delta + delta_bias[:, None])
    bt, dd, length = u.shape
    g = B.shape[1]
    x = h0.clone()
    ys = []
    for t in range(length):
        Bt = B[:, :, :, t].repeat_interleave(dd // g, dim=1)  # (Bt, Dd, N)
        Ct = C[:, :, :, t].repeat_interleave(dd // g, dim=1)
        dA = torch.exp(delta[:, :, t, None] * A)
        x = dA * x + delta[:, :, t, None] * Bt * u[:, :, t, None]
        ys.append((x * Ct).sum(-1))
    y = torch.stack(ys, dim=-1) + D[:, None] * u
    return y * F.silu(z), x


def scan_fixture():
    torch.manual_seed(1)
    bt, dd, n, length, g = 2, 6, 5, 9, 2
    d = torch.float64
    vals = {
        "u": torch.randn(bt, dd, length, dtype=d),
        "delta": torch.randn(bt, dd, length, dtype=d) - 1.0,
        "A": -torch.rand(dd, n, dtype=d) * 2.0 - 0.1,
        "B": torch.randn(bt, g, n, length, dtype=d),
        "C": torch.randn(bt, g, n, length, dtype=d),
        "D": torch.rand(dd, dtype=d) + 0.5,
        "z": torch.randn(bt, dd, length, dtype=d),
        "delta_bias": torch.rand(dd, dtype=d) - 0.5,
        "h0": torch.randn(bt, dd, n, dtype=d),
    }
    for v in vals.values():
        v.requires_grad_(True)
    out, last = scan_ref(**vals)
    w_out, w_last = torch.randn_like(out), torch.randn_like(last)
    ((out * w_out).sum() + (last * w_last).sum()).backward()
    tensors = {k: v.detach() for k, v in vals.items()}
    tensors.update(out=out.detach(), last=last.detach(), w_out=w_out, w_last=w_last)
    tensors.update({"grad." + k: v.grad for k, v in vals.items()})
    path = os.path.join(ROOT, "selective_scan.safetensors")
    save_file({k: v.float().contiguous() for k, v in tensors.items()}, path)
    print("wrote", path)


if __name__ == "__main__":
    hf_model()
    scan_fixture()
