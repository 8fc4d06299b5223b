"""Parsed catalog files kept on disk by the sha256 of their bytes.

Parsing the YAML is most of loading a large catalog (about 5 s for 100,000 customers and
subscriptions, even with libyaml); reading the same document back as JSON takes a tenth of that.
Each `billing` command is a new process, so an unchanged catalog is parsed once, not once per
command. The cache is JSON, never code: a document holding anything JSON cannot give back
exactly (a non-text mapping key, a set, bytes) is simply not cached. Entries are written
atomically and the least recently used beyond `KEEP_ENTRIES` are removed.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import Any

KEEP_ENTRIES = 16
_DATE = "\u0000date"
_DATETIME = "\u0000datetime"


def parsed_document(content: bytes, digest: str, folder: str | Path,
                    parse: Callable[[str], Any]) -> Any:
    """The document `content` parses to: from the cache when an entry for `digest` is there,
    else parsed (a parse error propagates) and cached for the next load."""
    entry = Path(folder) / f"{digest}.json"
    try:
        document = json.loads(entry.read_text(encoding="utf-8"), object_hook=_revive)
        os.utime(entry)
        return document
    except (OSError, ValueError):
        pass
    document = parse(content.decode("utf-8"))
    if _json_exact(document):
        _store(entry, json.dumps(document, default=_encode, ensure_ascii=False))
    return document


def _encode(value: object) -> dict[str, str]:
    if isinstance(value, datetime):
        return {_DATETIME: value.isoformat()}
    if isinstance(value, date):
        return {_DATE: value.isoformat()}
    raise TypeError(f"not cacheable: {type(value).__name__}")


def _revive(mapping: dict[str, Any]) -> Any:
    if len(mapping) == 1:
        if _DATE in mapping:
            return date.fromisoformat(mapping[_DATE])
        if _DATETIME in mapping:
            return datetime.fromisoformat(mapping[_DATETIME])
    return mapping


def _json_exact(document: Any) -> bool:
    """Whether JSON gives `document` back exactly: text keys, and only values `_encode` and
    JSON know."""
    pending = [document]
    while pending:
        value = pending.pop()
        if isinstance(value, dict):
            if not all(isinstance(key, str) and key not in (_DATE, _DATETIME) for key in value):
                return False
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)
        elif not (value is None or isinstance(value, str | int | float | date)):
            return False
    return True


def _store(entry: Path, text: str) -> None:
    """Write the entry atomically, then keep the `KEEP_ENTRIES` most recently used. A cache
    that cannot be written (read-only folder, full disk) costs only the next parse."""
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=entry.parent, suffix=".part")
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(temporary, entry)
        entries = sorted(entry.parent.glob("*.json"), key=lambda p: p.stat().st_mtime,
                         reverse=True)
        for stale in entries[KEEP_ENTRIES:]:
            stale.unlink(missing_ok=True)
    except OSError:
        return
