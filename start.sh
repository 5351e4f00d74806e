#!/usr/bin/env bash
# Container entry point: ComfyUI on 127.0.0.1:8188 (never exposed), Studio on 0.0.0.0:8000.
# Everything a user makes lives under STUDIO_DIR on the persistent volume.
set -euo pipefail

export STUDIO_DIR="${STUDIO_DIR:-/workspace/studio}"
export STUDIO_HOST="${STUDIO_HOST:-0.0.0.0}"
export STUDIO_PORT="${STUDIO_PORT:-8000}"
export COMFYUI_URL="${COMFYUI_URL:-http://127.0.0.1:8188}"
COMFYUI_HOME="${COMFYUI_HOME:-/workspace/ComfyUI}"
# On RunPod, Studio is reached through the pod's own proxy name; nothing else may name it.
if [[ -n "${RUNPOD_POD_ID:-}" && -z "${STUDIO_ALLOWED_HOSTS:-}" ]]; then
  export STUDIO_ALLOWED_HOSTS="${RUNPOD_POD_ID}-${STUDIO_PORT}.proxy.runpod.net"
fi

mkdir -p "$STUDIO_DIR/logs"

comfy_pid=""
if [[ -f "$COMFYUI_HOME/main.py" ]]; then
  (
    cd "$COMFYUI_HOME"
    # Supervised: if ComfyUI dies, start it again after a short pause.
    while true; do
      python main.py --listen 127.0.0.1 --port 8188 --disable-auto-launch \
        --input-directory "$STUDIO_DIR/assets/input" --output-directory "$STUDIO_DIR/assets/output" \
        >>"$STUDIO_DIR/logs/comfyui.log" 2>&1 || true
      echo "ComfyUI exited; restarting in 3s" >>"$STUDIO_DIR/logs/comfyui.log"
      sleep 3
    done
  ) &
  comfy_pid=$!
else
  echo "No ComfyUI at $COMFYUI_HOME; Studio will show it as unreachable." >&2
fi

studio db upgrade
trap '[[ -n "$comfy_pid" ]] && kill "$comfy_pid" 2>/dev/null || true' EXIT
exec studio serve
