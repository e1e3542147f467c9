#!/bin/sh
# Trim an image's venv (inside the image builds, Dockerfile.cpu / Dockerfile.gpu): what no algorithm runs —
# pip itself, tests, bytecode caches, torch's C++ headers, test binaries and test libraries (about 250 MB
# of the CPU wheel). Run on the runtime, on a family layer and on each algorithm's venv alike, so each
# trimmed state is the one the next layer's manifest records.
set -eu
venv="${1:-/opt/algobox}"
if [ -x "$venv/bin/pip" ]; then "$venv/bin/pip" uninstall -y pip setuptools wheel; fi
find "$venv" -depth \( -name __pycache__ -o -name tests \) -type d -exec rm -rf {} +
sp="$(echo "$venv"/lib/python3*/site-packages)"
if [ -d "$sp/torch" ]; then
    rm -rf "$sp/torch/include" "$sp/torch/share/cmake" "$sp/torch/test" "$sp"/torch/lib/lib*test*.so \
           "$sp/torch/lib/libaoti_custom_ops.so" "$sp/torch/lib/libbackend_with_compiler.so"
    find "$sp/torch/bin" -mindepth 1 ! -name torch_shm_manager -exec rm -rf {} +
fi
