#!/usr/bin/env python3
"""PyTorch eager prefill of a GPT-2 checkpoint, for `headwise bench --pytorch` (src/Headwise.Benchmarks/PyTorchComparison.cs).

The forward is dev/reference/make_goldens.py's gpt2_forward: Hugging Face's GPT-2 written out op by op in eager PyTorch
(Conv1D addmm, eager attention with a masked_fill causal mask and a float32 softmax, gelu_new), the reference every GPT-2
golden is checked against. Only torch and numpy are needed (Debian: apt-get install python3-torch python3-numpy).

Usage: torch_prefill.py MODEL_DIR   (config.json + model.safetensors, as `SaveHf` writes them)
Threads: torch.set_num_threads per command, and OMP_NUM_THREADS / OPENBLAS_NUM_THREADS from the environment (OpenBLAS
reads them once at load: the caller starts one process per thread count).
First line out: "ready BLAS VERSION": the BLAS library the process mapped after a matrix product (openblas, mkl, or
reference: Debian's torch falls back to the reference BLAS, tens of times slower, when libopenblas0-pthread is missing)
and torch.__version__.
Then one command per line on stdin, one answer per line on stdout:
  run THREADS ID,ID,...   ->  "SECONDS NLL": the forward's wall time (torch.no_grad, all T logits, perf_counter around
                              the forward only) and the mean next-token NLL of the ids under its logits, in float64
  quit
"""
import json
import math
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reference"))
import make_goldens as mg  # noqa: E402
import torch  # noqa: E402


def load(model_dir):
    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = json.load(f)
    if cfg.get("model_type") != "gpt2":
        raise SystemExit(f"torch_prefill.py: {model_dir}: model_type {cfg.get('model_type')!r}, only gpt2 is supported")
    files = [f for f in os.listdir(model_dir) if f.endswith(".safetensors")]
    W = mg.load_weights(model_dir, files)
    if "transformer.wte.weight" not in W:
        # a GPT2Model checkpoint (no LM head) carries no "transformer." prefix
        W = {(k if k.startswith("lm_head.") else "transformer." + k): v for k, v in W.items()}
    return cfg, {k: v.float().contiguous() for k, v in W.items()}


def blas_in_use():
    torch.ones(64, 64) @ torch.ones(64, 64)
    try:
        with open("/proc/self/maps") as f:
            maps = f.read()
    except OSError:
        return "unknown"
    for name in ("openblas", "mkl", "blis"):
        if name in maps:
            return name
    return "reference" if "libblas" in maps else "unknown"


def main():
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    cfg, W = load(sys.argv[1])
    print(f"ready {blas_in_use()} {torch.__version__}", flush=True)
    for line in sys.stdin:
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "quit":
            return
        if parts[0] != "run" or len(parts) != 3:
            raise SystemExit(f"torch_prefill.py: unknown command {line.strip()!r}")
        torch.set_num_threads(int(parts[1]))
        ids = torch.tensor([[int(t) for t in parts[2].split(",")]], dtype=torch.long)
        T = ids.shape[1]
        mask = torch.ones(1, T, dtype=torch.long)
        pos = torch.arange(T)[None, :]
        with torch.no_grad():
            start = time.perf_counter()
            logits = mg.gpt2_forward(W, cfg, ids, mask, pos)
            seconds = time.perf_counter() - start
        mg.ATTN_STATS.clear()  # the reference keeps every pattern for its statistics; not wanted here
        lp = torch.log_softmax(logits[0].double(), dim=-1)
        nll = -lp[torch.arange(T - 1), ids[0, 1:]].mean().item() if T > 1 else 0.0
        print(f"{seconds!r} {nll!r}", flush=True)


if __name__ == "__main__":
    main()
