#!/usr/bin/env bash
# Set up everything resdsl and its tests need, in .venv of the repository.
set -euo pipefail
cd "$(dirname "$0")/.."

# Graphviz's `dot` renders diagrams as images; zsh and fish let the tests run the shell completions.
missing=""
command -v dot >/dev/null 2>&1 || missing="$missing graphviz"
command -v zsh >/dev/null 2>&1 || missing="$missing zsh"
command -v fish >/dev/null 2>&1 || missing="$missing fish"
if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && apt-get install -y -qq $missing >/dev/null) || echo "setup: could not install$missing" >&2
  elif command -v sudo >/dev/null 2>&1; then
    (sudo apt-get update -qq && sudo apt-get install -y -qq $missing >/dev/null) || echo "setup: could not install$missing" >&2
  else
    echo "setup: install$missing (graphviz renders images; zsh and fish test the shell completions)" >&2
  fi
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
# The constraints pin PyTorch's CPU build: an unpinned torch would be a multi-gigabyte CUDA build.
.venv/bin/python -m pip install -q --disable-pip-version-check -c scripts/constraints.txt -e ".[all,dev]"
