"""Everything LockN Gen knows about ComfyUI itself: its wire protocol and its HTTP API."""
