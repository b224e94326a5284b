"""``python -m comfyui_sim --port 8188``: run the simulator without Django."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging

from . import serve
from .cli import add_arguments, config_from_options


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m comfyui_sim", description=__doc__)
    add_arguments(parser)
    config = config_from_options(vars(parser.parse_args(argv)))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(config))


if __name__ == "__main__":
    main()
