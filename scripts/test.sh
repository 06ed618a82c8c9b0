#!/usr/bin/env bash
# One command from a fresh clone to a full test run: installs the system packages (Xvfb, Qt's
# X libraries), a venv with the test extra (pinned torch), then runs ruff and the whole suite
# (GUI tests under Xvfb through pytest-xvfb). Extra arguments go to pytest.
set -euo pipefail
source "$(dirname "$0")/setup_env.sh"
setup_system_packages
setup_venv testing
cd "$REPO_ROOT"
"$VENV/bin/ruff" check .
"$VENV/bin/ruff" format --check .
"$VENV/bin/python" -m pytest "$@"
