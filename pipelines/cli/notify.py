"""`billing notify ...`: check a notification channel by hand, and enable it again after a 410."""

from __future__ import annotations

import argparse
from functools import partial

from pipelines import settings


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
    attempt = send_test(partial(connect_writer, settings.warehouse_path()), channel,
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

    with connect_writer(settings.warehouse_path()) as con, transaction(con):
        changed = enable_channel(con, args.channel, now=settings.now())
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
