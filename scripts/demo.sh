#!/usr/bin/env bash
# One command from a fresh clone to results: installs what the demo needs, then runs
# `napari-sigma demo` on the embedded synthetic example. Usage: bash scripts/demo.sh [OUT_DIR]
set -euo pipefail
source "$(dirname "$0")/setup_env.sh"
setup_venv ""
OUT="${1:-$REPO_ROOT/demo_out}"
"$VENV/bin/napari-sigma" demo --out "$OUT"
