#!/usr/bin/env bash
# Installs what dev/reference/make_goldens.py needs: Debian's PyTorch and NumPy for /usr/bin/python3.
# Idempotent: does nothing when /usr/bin/python3 can already import torch and numpy.
set -euo pipefail
if /usr/bin/python3 -c 'import torch, numpy' >/dev/null 2>&1; then
    echo "torch already available: $(/usr/bin/python3 -c 'import torch; print(torch.__version__)')"
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update
$SUDO apt-get install -y python3-torch python3-numpy
/usr/bin/python3 -c 'import torch, numpy; print("torch", torch.__version__, "numpy", numpy.__version__)'
