"""``python -m devkit.stripe_emulator --port 12111 [--rps 25 ...]``"""

from __future__ import annotations

import argparse
import dataclasses

from .faults import Faults
from .server import serve


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m devkit.stripe_emulator",
        description="Run a local Stripe-compatible API server.",
    )
    parser.add_argument("--port", type=int, default=12111)
    parser.add_argument("--host", default="127.0.0.1")
    for field in dataclasses.fields(Faults):
        parser.add_argument(
            "--" + field.name.replace("_", "-"),
            dest=field.name,
            default=None,
            help=f"fault knob {field.name} (default {field.default!r})",
        )
    args = vars(parser.parse_args(argv))
    port, host = args.pop("port"), args.pop("host")
    serve(port, host, **{k: v for k, v in args.items() if v is not None})


if __name__ == "__main__":
    main()
