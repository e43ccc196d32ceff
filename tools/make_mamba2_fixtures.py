#!/usr/bin/env python3
"""Golden fixtures for recur's Mamba-2 from Hugging Face transformers.

tests/fixtures/mamba2/model.safetensors (+ config.json): a tiny
`Mamba2ForCausalLM` (its pure-PyTorch path, what runs on a CPU; 4 heads of
8 channels in 2 groups, state size 8, untied head), written with its own
`save_pretrained(safe_serialization=True)`. A_log, D, dt_bias and the norms
are perturbed from their initial values so that the test does not only see
defaults. tests/fixtures/mamba2/expected.safetensors: `input_ids` (B, L) as
float32, `logits` (B, L, V), `w` (the weights of the loss
L = sum(logits * w)) and `grad.<name>` for every parameter under Hugging
Face's names; and Hugging Face's inference cache after prompts of 7 and 2
tokens, `cache<P>.conv.<layer>` (B, conv_dim, d_conv) and
`cache<P>.ssm.<layer>` (B, H, headdim, d_state), with `cache<P>.next_logits`:
the logits of the remaining tokens run from that cache (eval, no grad).

Run: /opt/venv/bin/python tools/make_mamba2_fixtures.py
     (the venv: pip install torch transformers safetensors)
"""
import os

import torch
from safetensors.torch import save_file
from transformers import Mamba2Config, Mamba2ForCausalLM

ROOT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures")


def main():
    torch.manual_seed(0)
    cfg = Mamba2Config(
        vocab_size=23, hidden_size=16, state_size=8, num_hidden_layers=2, conv_kernel=4,
        expand=2, num_heads=4, head_dim=8, n_groups=2, chunk_size=4, use_conv_bias=True,
        use_bias=False, layer_norm_epsilon=1e-5, tie_word_embeddings=False,
    )
    model = Mamba2ForCausalLM(cfg).float()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("A_log", ".D", "dt_bias")) or "norm" in name:
                p.add_(0.1 * torch.randn_like(p))
    model.train()
    ids = torch.randint(0, cfg.vocab_size, (2, 13))
    logits = model(ids).logits
    w = torch.randn_like(logits)
    (logits * w).sum().backward()
    out = os.path.join(ROOT, "mamba2")
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
    print("wrote", out, [(n, tuple(p.shape)) for n, p in model.named_parameters()])


if __name__ == "__main__":
    main()
