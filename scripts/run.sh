#!/usr/bin/env bash
# Set up, then the main job: build ResNet-50 to PyTorch source and print its summary.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/resdsl build specs/resnet50.res -o build/resnet50.py
.venv/bin/resdsl summary specs/resnet50.res
