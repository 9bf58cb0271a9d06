#!/usr/bin/python3
"""Float64 reference forward pass of a Llama/Mistral/Qwen2/Qwen3 model in numpy.

Reads config.json and model.safetensors of a model folder exactly as Hugging Face
transformers defines the math (RMSNorm, rotate_half RoPE with llama3 scaling,
GQA causal attention with optional sliding window, SwiGLU MLP, q/k norms and
biases) and prints the log-probs of the next token after a prompt.

Usage: reference_forward.py MODEL_DIR 1,2,3   -> JSON {"logprobs": [... vocab ...]}
Also importable: logprobs(model_dir, tokens) -> np.ndarray[vocab].
"""
import json
import math
import struct
import sys

import numpy as np


def load_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        raw = data[base + b : base + e]
        dt = info["dtype"]
        if dt == "BF16":
            u = np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16
            arr = u.view(np.float32)
        elif dt == "F16":
            arr = np.frombuffer(raw, dtype=np.float16)
        elif dt == "F32":
            arr = np.frombuffer(raw, dtype=np.float32)
        else:
            raise ValueError(dt)
        out[name] = arr.astype(np.float64).reshape(info["shape"])
    return out


def rms_norm(x, w, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def inv_freq(cfg, head_dim):
    theta = cfg.get("rope_theta", 10000.0)
    f = 1.0 / theta ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
    rs = cfg.get("rope_scaling")
    if rs:
        kind = rs.get("rope_type", rs.get("type"))
        if kind == "linear":
            f = f / rs["factor"]
        elif kind == "llama3":
            factor, lo, hi = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"]
            old = rs["original_max_position_embeddings"]
            low_wl, high_wl = old / lo, old / hi
            wl = 2 * math.pi / f
            scaled = np.where(wl > low_wl, f / factor, f)
            smooth = (old / wl - lo) / (hi - lo)
            smoothed = (1 - smooth) * scaled / factor + smooth * scaled
            medium = ~(wl < high_wl) & ~(wl > low_wl)
            f = np.where(medium, smoothed, scaled)
    return f


def rope(x, pos, freqs):
    # x: [T, heads, hd]; rotate_half convention.
    ang = pos[:, None] * freqs[None, :]
    cos = np.concatenate([np.cos(ang)] * 2, axis=-1)[:, None, :]
    sin = np.concatenate([np.sin(ang)] * 2, axis=-1)[:, None, :]
    half = x.shape[-1] // 2
    rot = np.concatenate([-x[..., half:], x[..., :half]], axis=-1)
    return x * cos + rot * sin


def logprobs(model_dir, tokens):
    cfg = json.load(open(model_dir + "/config.json"))
    W = load_safetensors(model_dir + "/model.safetensors")
    arch = cfg["architectures"][0]
    H = cfg["hidden_size"]
    nh = cfg["num_attention_heads"]
    nkv = cfg.get("num_key_value_heads", nh)
    hd = cfg.get("head_dim") or H // nh
    eps = cfg.get("rms_norm_eps", 1e-6)
    window = 0
    if arch == "MistralForCausalLM":
        window = cfg.get("sliding_window") or 0
    elif cfg.get("use_sliding_window"):
        window = cfg.get("sliding_window") or 0
    T = len(tokens)
    pos = np.arange(T, dtype=np.float64)
    freqs = inv_freq(cfg, hd)
    x = W["model.embed_tokens.weight"][np.array(tokens)]
    mask = np.tril(np.ones((T, T), dtype=bool))
    if window:
        mask &= ~np.tril(np.ones((T, T), dtype=bool), -window)
    for l in range(cfg["num_hidden_layers"]):
        p = "model.layers.%d." % l
        h = rms_norm(x, W[p + "input_layernorm.weight"], eps)
        q = h @ W[p + "self_attn.q_proj.weight"].T
        k = h @ W[p + "self_attn.k_proj.weight"].T
        v = h @ W[p + "self_attn.v_proj.weight"].T
        if p + "self_attn.q_proj.bias" in W:
            q += W[p + "self_attn.q_proj.bias"]
            k += W[p + "self_attn.k_proj.bias"]
            v += W[p + "self_attn.v_proj.bias"]
        q = q.reshape(T, nh, hd)
        k = k.reshape(T, nkv, hd)
        v = v.reshape(T, nkv, hd)
        if p + "self_attn.q_norm.weight" in W:
            q = rms_norm(q, W[p + "self_attn.q_norm.weight"], eps)
            k = rms_norm(k, W[p + "self_attn.k_norm.weight"], eps)
        q = rope(q, pos, freqs)
        k = rope(k, pos, freqs)
        g = nh // nkv
        out = np.zeros((T, nh, hd))
        for head in range(nh):
            kh = k[:, head // g, :]
            vh = v[:, head // g, :]
            s = (q[:, head, :] @ kh.T) / math.sqrt(hd)
            s = np.where(mask, s, -np.inf)
            s = s - s.max(axis=-1, keepdims=True)
            e = np.exp(s)
            a = e / e.sum(axis=-1, keepdims=True)
            out[:, head, :] = a @ vh
        o = out.reshape(T, nh * hd) @ W[p + "self_attn.o_proj.weight"].T
        if p + "self_attn.o_proj.bias" in W:
            o += W[p + "self_attn.o_proj.bias"]
        x = x + o
        h = rms_norm(x, W[p + "post_attention_layernorm.weight"], eps)
        gte = h @ W[p + "mlp.gate_proj.weight"].T
        up = h @ W[p + "mlp.up_proj.weight"].T
        x = x + ((gte / (1 + np.exp(-gte))) * up) @ W[p + "mlp.down_proj.weight"].T
    h = rms_norm(x[-1], W["model.norm.weight"], eps)
    head = W.get("lm_head.weight", W["model.embed_tokens.weight"])
    logits = head @ h
    m = logits.max()
    return logits - (m + math.log(np.exp(logits - m).sum()))


if __name__ == "__main__":
    toks = [int(t) for t in sys.argv[2].split(",")]
    lp = logprobs(sys.argv[1], toks)
    print(json.dumps({"logprobs": lp.tolist()}))
