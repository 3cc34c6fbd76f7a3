#!/usr/bin/env bash
# Set up, then run the whole test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# One worker per core (the tests run torch on one thread each); a file's tests stay on one worker, so
# its module fixtures (the diagram layouts, the torchrun runs) are made once. `-n 0` runs them in-process.
.venv/bin/python -m pytest -n auto --dist loadfile "$@"
