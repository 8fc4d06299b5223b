"""Usage events as customers send them, and the landed files that carry them."""

from __future__ import annotations

import json
from pathlib import Path


def event(event_id: str, *, customer: str = "acme_corp_001", name: str = "api.request",
          ts: str = "2026-01-21T14:30:00Z", source: str | None = "gateway-eu",
          properties: object = None, **extra: object) -> dict[str, object]:
    """A native-shape event as users send it."""
    doc: dict[str, object] = {"event_id": event_id, "event_name": name, "customer_id": customer,
                              "timestamp": ts,
                              "properties": {"endpoint": "/v1/users"} if properties is None
                              else properties}
    if source is not None:
        doc["source"] = source
    doc.update(extra)
    return doc


def write_lines(path: Path, lines: list[object]) -> Path:
    """A JSON Lines file: dicts are dumped, strings written as they are."""
    path.write_text("".join((ln if isinstance(ln, str) else json.dumps(ln)) + "\n"
                            for ln in lines), encoding="utf-8")
    return path
