"""Which notification URLs the pipeline sends to: https, or plain http to this machine only.

Notifications carry invoices and customer data and a signature an eavesdropper could replay
within the receivers' tolerance, so they travel over TLS. Loopback receivers (127.0.0.0/8, ::1,
`localhost`: the local stand-ins of development and tests) may use http, as nothing leaves the
machine. A URL never carries credentials (the secret comes from the channel's `secret_env`).
The catalog refuses other URLs when it is loaded, and delivery checks again before sending.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

LOOPBACK_NAMES = frozenset({"localhost", "localhost."})


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 or `localhost` (no name is resolved)."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def url_problem(url: str) -> str | None:
    """Why the pipeline will not send to `url`, or None when it will."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - a port that is not a number raises here
    except ValueError:
        return "url is not a valid URL (its host or port)"
    if "@" in parts.netloc:  # checked first: the other messages quote the URL
        return "url must not carry credentials (name the secret's variable in secret_env)"
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return f"url must be https://host/..., got {url!r}"
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        return (f"url must use https (plain http only to loopback: 127.0.0.0/8, ::1, "
                f"localhost), got {url!r}")
    return None
