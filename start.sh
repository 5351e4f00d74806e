#!/usr/bin/env bash
# Container entry point (docs/deploy.md). Studio on $STUDIO_HOST:$STUDIO_PORT (0.0.0.0:8000, the only
# exposed port); ComfyUI is started by Studio itself on 127.0.0.1 (COMFYUI_DIR) and never exposed.
#   1. ComfyUI copied from the image (/comfyui) to the volume on first boot.
#   2. `studio bootstrap` when the volume is new or incomplete; when it fails, a page on the port
#      says why (a pod restarting in a loop shows nobody anything).
#   3. `exec studio supervise`: it runs Studio from the volume's current release, restarts it,
#      applies updates and rolls them back. exec: docker's SIGTERM reaches it directly.
set -euo pipefail

export STUDIO_DIR="${STUDIO_DIR:-/workspace/studio}"
export STUDIO_HOST="${STUDIO_HOST:-0.0.0.0}"
export STUDIO_PORT="${STUDIO_PORT:-8000}"
export REPO_URL="${REPO_URL:-}"
export REPO_BRANCH="${REPO_BRANCH:-main}"
# The image's own copy of Studio: bootstrap and supervisor run from it, never from a release.
STUDIO_APP="${STUDIO_APP:-/app}"
PYTHON="${STUDIO_PYTHON:-python3}"
COMFYUI_IMAGE_DIR="${COMFYUI_IMAGE_DIR:-/comfyui}"
export COMFYUI_DIR="${COMFYUI_DIR:-/workspace/ComfyUI}"
# On RunPod, Studio is reached through the pod's own proxy name; nothing else may name it.
if [[ -n "${RUNPOD_POD_ID:-}" && -z "${STUDIO_ALLOWED_HOSTS:-}" ]]; then
  export STUDIO_ALLOWED_HOSTS="${RUNPOD_POD_ID}-${STUDIO_PORT}.proxy.runpod.net"
fi
export PYTHONPATH="$STUDIO_APP${PYTHONPATH:+:$PYTHONPATH}"

log() { echo "[start] $*"; }

mkdir -p "$STUDIO_DIR/logs"

if [[ ! -e "$COMFYUI_DIR" && -d "$COMFYUI_IMAGE_DIR" ]]; then
  log "copying ComfyUI from $COMFYUI_IMAGE_DIR to $COMFYUI_DIR (first boot)"
  rm -rf "$COMFYUI_DIR.partial"
  cp -a "$COMFYUI_IMAGE_DIR" "$COMFYUI_DIR.partial"
  mv "$COMFYUI_DIR.partial" "$COMFYUI_DIR"
fi
if [[ ! -f "$COMFYUI_DIR/main.py" ]]; then
  log "no ComfyUI at $COMFYUI_DIR: Studio will show it as unreachable"
  unset COMFYUI_DIR
fi

volume_complete() {
  [[ -f "$STUDIO_DIR/version.json" && -L "$STUDIO_DIR/current" && -d "$STUDIO_DIR/current/studio" ]]
}

if ! volume_complete; then
  reason="$STUDIO_DIR/logs/bootstrap-failure.txt"
  if ! "$PYTHON" -m studio bootstrap 2>&1 | tee "$reason.tmp"; then
    cat "$reason.tmp" >>"$STUDIO_DIR/logs/bootstrap.log"
    mv "$reason.tmp" "$reason"
    log "bootstrap failed; serving the reason on port $STUDIO_PORT"
    exec "$PYTHON" -m studio.deploy.errorpage --host "$STUDIO_HOST" --port "$STUDIO_PORT" --reason-file "$reason"
  fi
  cat "$reason.tmp" >>"$STUDIO_DIR/logs/bootstrap.log"
  rm -f "$reason.tmp" "$reason"
fi

log "starting the supervisor (Studio on $STUDIO_HOST:$STUDIO_PORT)"
exec "$PYTHON" -m studio supervise
