#!/usr/bin/env bash
# The accelerator check: install as the README says, then measure everything a GPU lease is
# for in one run and write one JSON (benchmarks/device_check.py says what and how long).
#
#   bash benchmarks/device_check.sh [--dry-run] [--no-install] [--out FILE] [device_check.py options]
#
# --dry-run     no install, the CPU, tiny shapes, the same JSON (what the test suite runs)
# --no-install  use the current environment as it is (e.g. a machine that cannot reach PyPI)
#
# The install is the README's `pip install -e .`; when a GPU is present (nvidia-smi) and JAX
# still sees none, it adds JAX's CUDA wheels for the installed JAX version
# (`jax[cuda12]==<version>`; JAX_CUDA=cuda13 picks the CUDA 13 ones). Each step's command,
# exit code and seconds go into the JSON. PYTHON (default: python3) is the interpreter.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=${PYTHON:-python3}

install=1
forward=()
for arg in "$@"; do
  case "$arg" in
    --dry-run) install=0; forward+=("$arg") ;;
    --no-install) install=0 ;;
    *) forward+=("$arg") ;;
  esac
done

steps=()
step() {  # step COMMAND...: run it, remember (command, exit code, seconds)
  local t0=$SECONDS rc
  echo "+ $*" >&2
  "$@"
  rc=$?
  steps+=(--install-step "$*" "$rc" "$((SECONDS - t0))")
  return $rc
}

if (( install )); then
  step "$PYTHON" -m pip install -e .
  if command -v nvidia-smi >/dev/null 2>&1 &&
     ! "$PYTHON" -c 'import jax, sys; sys.exit(jax.default_backend() != "gpu")' 2>/dev/null; then
    version=$("$PYTHON" -c 'import jax; print(jax.__version__)')
    step "$PYTHON" -m pip install "jax[${JAX_CUDA:-cuda12}]==${version}"
  fi
fi

exec "$PYTHON" benchmarks/device_check.py ${steps[@]+"${steps[@]}"} ${forward[@]+"${forward[@]}"}
