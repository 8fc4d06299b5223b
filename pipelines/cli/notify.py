"""`billing notify ...`: check a notification channel by hand, and enable it again after a 410.

Channels are the catalog's, shared by every customer shard; each shard's runs deliver (and, on a
410, disable) them in its own file. So `enable` enables the channel again in every shard's file,
and `test` records its attempt in the first shard's (the finance view shows it either way)."""

from __future__ import annotations

import argparse
from functools import partial

from pipelines import settings
from pipelines.sharding import warehouse_paths


def cmd_notify_test(args: argparse.Namespace) -> None:
    from pipelines.catalog import CatalogError, load_catalog
    from pipelines.notifications.delivery import send_test
    from pipelines.warehouse import connect_writer

    try:
        catalog = load_catalog(settings.catalog_path())
    except CatalogError as exc:
        raise SystemExit(f"billing notify test: {exc}") from None
    channel = catalog.notification_channels.get(args.channel)
    if channel is None:
        known = ", ".join(sorted(catalog.notification_channels)) or "none"
        raise SystemExit(f"billing notify test: --channel {args.channel!r} is not a notification "
                         f"channel of the catalog (known: {known})")
    attempt = send_test(partial(connect_writer, warehouse_paths()[0]), channel,
                        now=settings.now())
    status = attempt.http_status if attempt.http_status is not None else "no response"
    print(f"channel {channel.key} ({channel.url}): HTTP {status}, {attempt.outcome}, "
          f"message {attempt.message_id}")
    if attempt.error:
        print(f"error: {attempt.error}")
    if attempt.outcome != "delivered":
        raise SystemExit(1)


def cmd_notify_enable(args: argparse.Namespace) -> None:
    from pipelines.notifications.delivery import enable_channel
    from pipelines.warehouse import connect_writer, transaction

    changed = False
    for path in warehouse_paths():
        with connect_writer(path) as con, transaction(con):
            changed = enable_channel(con, args.channel, now=settings.now()) or changed
    print(f"channel {args.channel}: " + ("enabled again" if changed else "was not disabled"))


def register(commands: argparse._SubParsersAction) -> None:
    """Add `notify` to the `billing` parser."""
    notify = commands.add_parser("notify", help="notification channels: send a test event, "
                                                "enable a channel disabled by a 410")
    actions = notify.add_subparsers(dest="notify_command", required=True)
    test = actions.add_parser("test", help="send a signed webhook.test event to a channel now "
                                           "and print its delivery status")
    test.add_argument("--channel", required=True, help="a notification channel key")
    test.set_defaults(func=cmd_notify_test)
    enable = actions.add_parser("enable", help="send to a channel disabled by 410 Gone again")
    enable.add_argument("--channel", required=True, help="a notification channel key")
    enable.set_defaults(func=cmd_notify_enable)
