"""Custom node packs in ComfyUI's ``custom_nodes`` folder: listed, installed (git or the Comfy Registry), set aside."""
