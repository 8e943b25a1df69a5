#!/usr/bin/env bash
# Installs what dev/reference/make_*goldens.py need: Debian's PyTorch, NumPy and PIL (make_vit_goldens.py) for /usr/bin/python3.
# Idempotent: does nothing when /usr/bin/python3 can already import torch, numpy and PIL.
set -euo pipefail
if /usr/bin/python3 -c 'import torch, numpy, PIL' >/dev/null 2>&1; then
    echo "torch already available: $(/usr/bin/python3 -c 'import torch; print(torch.__version__)')"
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update
$SUDO apt-get install -y python3-torch python3-numpy python3-pil
/usr/bin/python3 -c 'import torch, numpy, PIL; print("torch", torch.__version__, "numpy", numpy.__version__)'
