# shellcheck shell=bash
# Sourced by the scripts that build the backends: installs, once per machine, the vendor
# toolkits from PyPI into ~/.cache/latebird (LATEBIRD_TOOLKITS) and exports what the builds read.
#   use_mkl   Intel MKL (mkl-static, mkl-include) in a virtualenv: pip --target drops these
#             wheels' library files. Exports MKLROOT.
#   use_cuda  the CUDA 13 compiler and headers (nvcc, runtime, crt, nvvm, cccl). Exports
#             CUDA_HOME, CUDA_COMPUTE_CAP (80 unless set) and puts nvcc on PATH.
TOOLKITS="${LATEBIRD_TOOLKITS:-$HOME/.cache/latebird}"
MKL_PINS="mkl-static==2026.2.0 mkl-include==2026.2.0"
CUDA_VERSION_PIN="13.2.86"

use_mkl() {
  local venv="$TOOLKITS/mkl"
  if [ ! -f "$venv/lib/libmkl_core.a" ] || [ "$(cat "$venv/.pins" 2>/dev/null)" != "$MKL_PINS" ]; then
    echo "installing Intel MKL from PyPI into $venv" >&2
    rm -rf "$venv"
    python3 -m venv "$venv"
    # shellcheck disable=SC2086 # one requirement per word
    "$venv/bin/pip" install --quiet $MKL_PINS
    echo "$MKL_PINS" >"$venv/.pins"
  fi
  export MKLROOT="$venv"
}

use_cuda() {
  local target="$TOOLKITS/cuda13"
  local v="$CUDA_VERSION_PIN"
  if [ ! -x "$target/nvidia/cu13/bin/nvcc" ] || [ "$(cat "$target/.pins" 2>/dev/null)" != "$v" ]; then
    echo "installing the CUDA $v compiler from PyPI into $target" >&2
    rm -rf "$target"
    python3 -m pip install --quiet --disable-pip-version-check --target "$target" \
      "nvidia-cuda-nvcc==$v" "nvidia-cuda-runtime==$v" "nvidia-cuda-crt==$v" \
      "nvidia-nvvm==$v" "nvidia-cuda-cccl==$v"
    echo "$v" >"$target/.pins"
  fi
  export CUDA_HOME="$target/nvidia/cu13"
  export PATH="$CUDA_HOME/bin:$PATH"
  export CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-80}"
}
