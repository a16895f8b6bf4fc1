#!/usr/bin/env bash
# Set up t2v in ./.venv: torch 2.13.0 first (on Linux, pick the CPU build with PIP_INDEX_URL or the CUDA one you
# need; a plain install of another version may pull GBs of CUDA packages), then t2v with its dev extras, then a tiny offline model.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q "torch==${T2V_TORCH_VERSION:-2.13.0}"
# The rest with uv, which keeps the torch above and installs the other 200 packages, compiled, in about 40 s where
# pip takes over 2 minutes on 2 cores (the same versions either way); pip where uv cannot be had.
if .venv/bin/python -m pip install -q uv && .venv/bin/python -m uv --version >/dev/null 2>&1; then
  .venv/bin/python -m uv pip install -q --compile-bytecode --python .venv/bin/python -e ".[dev]"
else
  .venv/bin/python -m pip install -q -e ".[dev]"
fi
# An editable install leaves t2v's own modules uncompiled; where PYTHONDONTWRITEBYTECODE is set, every process
# would compile them again (about 0.4 s of each `t2v` start on 2 cores). Compile them once here.
.venv/bin/python -m compileall -q src >/dev/null
# torchao for the --weights int8 test, in a folder of its own that only that test puts on the path: inside the venv
# diffusers would import it (0.3 s) on every model load of every run.
[ -d .venv/torchao-site/torchao ] || .venv/bin/python -m pip install -q --no-deps --target .venv/torchao-site "torchao>=0.10"
if [ ! -f tiny-model/model_index.json ]; then
  rm -rf tiny-model
  .venv/bin/t2v models make-tiny tiny-model
fi
echo "t2v is set up: .venv/bin/t2v --help"
