#!/usr/bin/env bash
# Create .venv (if missing) and install fcinvert with everything it needs.
# torch is pinned to 2.13.0: that CPU wheel is what the project is tested with; an unpinned
# torch would pull a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet torch==2.13.0
.venv/bin/python -m pip install --quiet -e ".[test]"
