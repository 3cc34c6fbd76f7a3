#!/usr/bin/env bash
# Set up everything resdsl and its tests need, in .venv of the repository.
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages from Debian/Ubuntu, installed when this runs as root (or with sudo):
#   graphviz                    Graphviz's `dot` renders diagrams (the Python package only writes DOT)
#   chromium, chromium-driver   a headless browser for the tests of the interactive page (render --format html)
install() {  # install() WHAT PACKAGE...
  local what=$1
  shift
  if [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && apt-get install -y -qq "$@" >/dev/null) || echo "setup: could not install $what" >&2
  elif command -v sudo >/dev/null 2>&1; then
    (sudo apt-get update -qq && sudo apt-get install -y -qq "$@" >/dev/null) || echo "setup: could not install $what" >&2
  else
    echo "setup: install $what ($*); the tests that need it skip without it" >&2
  fi
}
command -v dot >/dev/null 2>&1 || install "graphviz" graphviz
command -v chromedriver >/dev/null 2>&1 || install "a headless Chromium" chromium chromium-driver

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[all]"
