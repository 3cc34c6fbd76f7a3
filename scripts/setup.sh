#!/usr/bin/env bash
# Set up everything resdsl and its tests need, in .venv of the repository.
set -euo pipefail
cd "$(dirname "$0")/.."

# Graphviz's `dot` renders diagrams (the Python package only writes DOT).
if ! command -v dot >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && apt-get install -y -qq graphviz >/dev/null) || echo "setup: could not install graphviz" >&2
  elif command -v sudo >/dev/null 2>&1; then
    (sudo apt-get update -qq && sudo apt-get install -y -qq graphviz >/dev/null) || echo "setup: could not install graphviz" >&2
  else
    echo "setup: install graphviz (dot) to render images" >&2
  fi
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
# The constraints pin PyTorch's CPU build: an unpinned torch would be a multi-gigabyte CUDA build.
.venv/bin/python -m pip install -q --disable-pip-version-check -c scripts/constraints.txt -e ".[all]"
