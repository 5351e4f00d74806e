"""Scripts that capture ground truth from a real ComfyUI (run by hand, never collected by pytest)."""
