#!/usr/bin/env bash
# Installs what dev/reference/make_*goldens.py need: Debian's PyTorch, NumPy and PIL (make_vit_goldens.py) for /usr/bin/python3.
# Also OpenBLAS (libopenblas0-pthread): without it Debian's torch multiplies with the reference BLAS, tens of times slower,
# which `headwise bench --pytorch` (dev/bench/torch_prefill.py) would time. Idempotent: does nothing when /usr/bin/python3
# can already import torch, numpy and PIL and OpenBLAS is installed.
set -euo pipefail
if /usr/bin/python3 -c 'import torch, numpy, PIL' >/dev/null 2>&1 && [ -e /usr/lib/x86_64-linux-gnu/libopenblas.so.0 -o -e /usr/lib/aarch64-linux-gnu/libopenblas.so.0 ]; then
    echo "torch already available: $(/usr/bin/python3 -c 'import torch; print(torch.__version__)')"
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update
$SUDO apt-get install -y python3-torch python3-numpy python3-pil libopenblas0-pthread
/usr/bin/python3 -c 'import torch, numpy, PIL; print("torch", torch.__version__, "numpy", numpy.__version__)'
