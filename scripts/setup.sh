#!/usr/bin/env bash
# Set up everything resdsl and its tests need, in .venv of the repository.
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages from Debian/Ubuntu, installed when this runs as root (or with sudo):
#   graphviz                    Graphviz's `dot` renders diagrams as images (DOT text needs nothing)
#   zsh, fish                   let the tests run the shell completions
#   chromium, chromium-driver   a headless browser for the tests of the interactive page (render --format html)
as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null 2>&1; then sudo "$@"; else return 1; fi
}
updated=""
install() {  # install() WHAT PACKAGE...: each group on its own, so one that fails leaves the others
  local what=$1
  shift
  if [ "$(id -u)" != 0 ] && ! command -v sudo >/dev/null 2>&1; then
    echo "setup: install $what ($*); the tests that need it skip without it" >&2
    return 0
  fi
  if [ -z "$updated" ]; then as_root apt-get update -qq || true; updated=1; fi
  as_root apt-get install -y -qq "$@" >/dev/null || echo "setup: could not install $what" >&2
}
command -v dot >/dev/null 2>&1 || install "graphviz" graphviz
command -v zsh >/dev/null 2>&1 || install "zsh" zsh
command -v fish >/dev/null 2>&1 || install "fish" fish
command -v chromedriver >/dev/null 2>&1 || install "a headless Chromium" chromium chromium-driver

[ -x .venv/bin/python ] || python3 -m venv .venv
# The constraints pin PyTorch's CPU build: an unpinned torch would be a multi-gigabyte CUDA build.
.venv/bin/python -m pip install -q --disable-pip-version-check -c scripts/constraints.txt -e ".[all,dev]"
