"""`python -m devkit`: the commands of the development kit, apart from the product's `billing`.

- ``stripe-emulator --port N [fault knobs]``: the local Stripe-compatible server (its options
  belong to `devkit.stripe_emulator`'s own parser; ``stripe-emulator --help`` lists them).
- ``generate-events --month YYYY-MM [...]``: a realistic sample month of usage events for the
  catalog's customers, written to the landing zone with deliberate faults of known counts.
- ``demo``: what `make demo` runs (`devkit.demo`).
"""

from __future__ import annotations

import argparse
import os
import runpy
import sys
from collections.abc import Sequence

from pipelines import settings

STRIPE_EMULATOR = "stripe-emulator"


def cmd_generate_events(args: argparse.Namespace) -> None:
    """Write one sample file named after month and seed, and say what it holds by design."""
    from devkit.sample_data import generate_events, write_csv, write_jsonl, write_parquet
    from pipelines.catalog import load_catalog

    catalog = load_catalog(args.catalog or settings.catalog_path())
    sample = generate_events(catalog, customers=args.customers, events=args.events,
                             month=args.month, seed=args.seed)
    out_dir = args.out or settings.landing_path()
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, f"events_{args.month}_seed{args.seed}.{args.format}")
    if args.format in ("jsonl", "jsonl.gz"):
        written = write_jsonl(sample, path, gzip=args.format == "jsonl.gz")
    elif args.format == "csv":
        written = write_csv(sample, path)
    else:
        written = write_parquet(sample, path)
    rejected = ", ".join(f"{reason} {n}" for reason, n in sorted(written.rejected.items()))
    print(f"wrote {path}: {written.lines} lines for {sample.summary.customers} customers "
          f"(by design: {written.accepted} valid events, {written.duplicates} duplicates, "
          f"rejects: {rejected or 'none'})")


def cmd_demo(args: argparse.Namespace) -> None:
    """Run `devkit.demo` as its own main module (the demo calls these commands itself, so this
    module does not import it)."""
    runpy.run_module("devkit.demo", run_name="__main__", alter_sys=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m devkit", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    commands.add_parser(
        STRIPE_EMULATOR,
        help="run the local Stripe-compatible server (--port N, fault knobs; --help for all)")

    generate = commands.add_parser("generate-events",
                                   help="write a realistic sample month of events")
    generate.add_argument("--customers", type=int, default=None,
                          help="use at most this many catalog customers")
    generate.add_argument("--events", type=int, default=10_000)
    generate.add_argument("--month", required=True, help="YYYY-MM")
    generate.add_argument("--seed", type=int, default=7)
    generate.add_argument("--format", choices=("jsonl", "jsonl.gz", "csv", "parquet"),
                          default="jsonl")
    generate.add_argument("--out", help="folder (default: the landing zone)")
    generate.add_argument("--catalog", help="catalog folder (default: BILLING_CATALOG)")
    generate.set_defaults(func=cmd_generate_events)

    demo = commands.add_parser(
        "demo", help="a sample month ingested, rated, synced with local stand-ins and reconciled "
                     "(what `make demo` runs)")
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == [STRIPE_EMULATOR]:
        from devkit.stripe_emulator.__main__ import main as emulator_main

        emulator_main(argv[1:])
        return
    args = build_parser().parse_args(argv)
    args.func(args)
