"""The API's bounds, in one place: the validators enforce them, the OpenAPI document states them."""

from __future__ import annotations

# Generations (POST /api/generations)
MAX_NODES = 2000
MAX_PROMPT_CHARS = 4000
SIZE_MIN, SIZE_MAX, SIZE_STEP, SIZE_DEFAULT = 64, 2048, 8, 512
STEPS_MIN, STEPS_MAX, STEPS_DEFAULT = 1, 150, 20
CFG_MIN, CFG_MAX, CFG_DEFAULT = 0.0, 30.0, 7.0
SEED_MAX = 2**53 - 1  # exact in JavaScript, and within ComfyUI's 64-bit seed
GENERATIONS_PAGE, GENERATIONS_MAX_PAGE = 20, 100

# API tokens: a user may hold this many live ones (each is a credential to keep track of).
MAX_LIVE_TOKENS = 20
TOKEN_NAME_MAX = 100

# Webhooks
WEBHOOK_BODY_MAX = 16 * 1024
ATTEMPTS_PAGE, ATTEMPTS_MAX_PAGE = 50, 200
