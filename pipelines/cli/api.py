"""`billing api` serves the integration API; `billing token create|revoke|list` manage its
bearer tokens."""

from __future__ import annotations

import argparse

from pipelines.api import rules
from pipelines.cli.output import print_table


def cmd_api(args: argparse.Namespace) -> None:
    import logging

    from pipelines.api.app import create_app
    from pipelines.api.server import ServerLimits, serve
    from pipelines.api.store import ApiStore

    try:
        limits = ServerLimits.from_environment()
    except ValueError as exc:
        raise SystemExit(f"billing api: {exc}") from None
    store = ApiStore()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    print(f"integration API on http://{args.host}:{args.port}/api/v1 (store {store.path})",
          flush=True)
    serve(create_app(store, body_timeout_s=limits.body_timeout_s), host=args.host,
          port=args.port, limits=limits)


def cmd_token_create(args: argparse.Namespace) -> None:
    from pipelines.api.store import ApiStore

    try:
        scopes = rules.check_scopes(args.scope)
        store = ApiStore()
        token = store.create_token(args.name, scopes)
    except ValueError as exc:
        raise SystemExit(f"billing token create: {exc}") from None
    print(f"created token {args.name!r} with scope(s) {', '.join(scopes)} in {store.path}")
    print("the token is shown once, on the next line; only its hash is kept:")
    print(token)


def cmd_token_revoke(args: argparse.Namespace) -> None:
    from pipelines.api.store import ApiStore

    if not ApiStore().revoke_token(args.name):
        raise SystemExit(f"billing token revoke: no active token named {args.name!r}")
    print(f"revoked token {args.name!r}")


def cmd_token_list(args: argparse.Namespace) -> None:
    from pipelines.api.store import ApiStore

    tokens = ApiStore().list_tokens()
    if not tokens:
        print("no tokens")
        return
    print_table(("id", "name", "scopes", "ends_with", "created_at", "revoked_at"),
                [(t.token_id, t.name, ",".join(t.scopes), f"...{t.hint}",
                  t.created_at.isoformat(), t.revoked_at.isoformat() if t.revoked_at else "")
                 for t in tokens])


def register(commands: argparse._SubParsersAction) -> None:
    """Add `api` and `token` to the `billing` parser."""
    api = commands.add_parser(
        "api", help="serve the integration API (custom invoicing callbacks, Stripe webhooks)")
    api.add_argument("--port", type=int, required=True)
    api.add_argument("--host", default="127.0.0.1",
                     help="beyond loopback, put a reverse proxy in front (TLS, limits)")
    api.set_defaults(func=cmd_api)

    token = commands.add_parser("token", help="manage the integration API's bearer tokens")
    actions = token.add_subparsers(dest="token_command", required=True)
    create = actions.add_parser(
        "create", help="create a token; it is printed once, alone on the last line")
    create.add_argument("--name", required=True)
    create.add_argument("--scope", action="append", required=True,
                        help=f"repeatable; one of {', '.join(rules.SCOPES)}")
    create.set_defaults(func=cmd_token_create)
    revoke = actions.add_parser("revoke", help="revoke the active token of that name")
    revoke.add_argument("name")
    revoke.set_defaults(func=cmd_token_revoke)
    listing = actions.add_parser("list", help="list tokens (never their secrets)")
    listing.set_defaults(func=cmd_token_list)
