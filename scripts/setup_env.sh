#!/usr/bin/env bash
# Shared set-up for scripts/demo.sh and scripts/test.sh: system packages and a virtual environment.
# Usage (sourced): source scripts/setup_env.sh; setup_venv EXTRA; [setup_system_packages]
# The venv lives in .venv (override with NAPARI_SIGMA_VENV). torch is pinned by constraints.txt
# (2.13.0, the CPU build on this machine's disk); the package itself takes a range.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${NAPARI_SIGMA_VENV:-$REPO_ROOT/.venv}"
PYTHON="${PYTHON:-python3}"

QT_SYSTEM_PACKAGES="xvfb xauth libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-image0 \
libxcb-render-util0 libxcb-randr0 libxcb-xinerama0 libxcb-xinput0 libxcb-xkb1 libxkbcommon-x11-0 \
libxcb-shape0 libxcb-xfixes0 libegl1 libgl1 libopengl0 libfontconfig1 libdbus-1-3"

setup_system_packages() {
  # Xvfb and the X/GL libraries Qt needs for the headless GUI tests (Debian package names).
  local missing=""
  for package in $QT_SYSTEM_PACKAGES; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
      || missing="$missing $package"
  done
  [ -z "$missing" ] && return 0
  echo "[setup] installing system packages:$missing" >&2
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $missing >/dev/null
}

setup_venv() {
  # Create/refresh the venv with the package and the given extra ("" for the core only).
  local extra="${1:-}"
  local spec="$REPO_ROOT"
  [ -n "$extra" ] && spec="$REPO_ROOT[$extra]"
  local stamp="$VENV/.napari-sigma-$extra.stamp"
  local want
  want="$(cat "$REPO_ROOT/pyproject.toml" "$REPO_ROOT/constraints.txt" | sha256sum | cut -c1-16)"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    return 0
  fi
  [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
  echo "[setup] installing napari-sigma-eds${extra:+[$extra]} into $VENV (a few minutes the first time)" >&2
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q -c "$REPO_ROOT/constraints.txt" torch
  "$VENV/bin/python" -m pip install -q -c "$REPO_ROOT/constraints.txt" -e "$spec"
  echo "$want" > "$stamp"
}
