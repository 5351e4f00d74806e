#!/usr/bin/env bash
# Runs start.sh as the unprivileged `studio` user. Started as root (RunPod mounts its volume
# root-owned), it first gives that user the two folders it writes on the volume, then drops root
# for good; started as any other user (docker run --user), it just runs start.sh.
set -euo pipefail
if [[ "$(id -u)" != "0" ]]; then
  exec /start.sh "$@"
fi
studio_dir="${STUDIO_DIR:-/workspace/studio}"
comfyui_dir="${COMFYUI_DIR:-/workspace/ComfyUI}"
for folder in "$studio_dir" "$comfyui_dir"; do
  mkdir -p "$folder"
  # Only on first boot or after a root-owned copy: a recursive chown of a big volume takes minutes.
  if [[ "$(stat -c %u "$folder")" != "1000" ]]; then
    chown -R 1000:1000 "$folder"
  fi
done
exec setpriv --reuid=1000 --regid=1000 --init-groups /start.sh "$@"
