"""Jobs owned by Studio: the database is the queue; ComfyUI only ever holds a few of them."""
