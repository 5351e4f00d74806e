#!/usr/bin/env bash
# Writes docker/requirements.lock: Studio's dependencies (with the gpu extra) pinned with hashes for
# the image's Python 3.12 on linux x86_64. Run after changing pyproject.toml's dependencies;
# tests/test_deploy_image.py fails until the lock matches them again.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${STUDIO_VENV:-.venv}
digest=$("$VENV/bin/python" -c 'import sys; sys.path.insert(0, "tests"); from test_deploy_image import dependency_digest; print(dependency_digest())')
body=$(mktemp)
trap 'rm -f "$body"' EXIT
"$VENV/bin/uv" pip compile pyproject.toml --extra gpu --generate-hashes --python-version 3.12 \
  --python-platform x86_64-manylinux_2_28 --no-header --quiet -o "$body"
{
  echo "# Studio's dependencies for the image (Python 3.12, linux x86_64), pinned with hashes."
  echo "# Made by docker/lock.sh (uv pip compile pyproject.toml --extra gpu --generate-hashes); do not edit."
  echo "# pyproject-dependencies-sha256: $digest"
  cat "$body"
} >docker/requirements.lock
echo "docker/requirements.lock written ($(grep -c '==' docker/requirements.lock) packages)"
