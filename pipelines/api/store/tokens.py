"""API tokens: created with their scopes, shown once, kept only as a hash, revoked by name."""

from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pipelines.api import rules
from pipelines.api.store.database import StoreFile, read_instant, stored_instant

TOKEN_PREFIX = "bpk_"


@dataclass(frozen=True)
class TokenInfo:
    """What is known of a token once created: never the token itself. `token_id` is unique
    forever; a name is free again once its token is revoked."""

    name: str
    scopes: tuple[str, ...]
    hint: str
    created_at: datetime
    revoked_at: datetime | None
    token_id: int


def hash_token(token: str) -> str:
    """How a token is kept: its sha256 (tokens are 256-bit random, so no salt is needed)."""
    return hashlib.sha256(token.encode()).hexdigest()


class TokenStore(StoreFile):
    """The tokens table: who may call the API, with which scopes."""

    def create_token(self, name: str, scopes: Sequence[str], *,
                     at: datetime | None = None) -> str:
        """A new token with these scopes; the token is returned once and only its hash kept.
        A ValueError names an unknown scope or a name already used by an active token."""
        name = name.strip()
        if not name:
            raise ValueError("a token needs a name")
        checked = rules.check_scopes(scopes)
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        try:
            with self._write() as con:
                con.execute("""
                    INSERT INTO tokens (name, scopes, token_hash, hint, created_at)
                    VALUES (?, ?, ?, ?, ?)""",
                            (name, json.dumps(list(checked)), hash_token(token), token[-4:],
                             stored_instant(at or datetime.now(UTC))))
        except sqlite3.IntegrityError:
            raise ValueError(f"an active token is already named {name!r}; revoke it first "
                             "or choose another name") from None
        return token

    def revoke_token(self, name: str, *, at: datetime | None = None) -> bool:
        """Revoke the active token of that name; False when there is none."""
        with self._write() as con:
            cursor = con.execute("UPDATE tokens SET revoked_at = ? "
                                 "WHERE name = ? AND revoked_at IS NULL",
                                 (stored_instant(at or datetime.now(UTC)), name))
            return cursor.rowcount > 0

    def list_tokens(self) -> list[TokenInfo]:
        """Every token, active or revoked, oldest first: names, scopes and hints only."""
        with self._read() as con:
            rows = con.execute(f"SELECT {_TOKEN_COLUMNS} FROM tokens ORDER BY id").fetchall()
        return [_token_info(row) for row in rows]

    def authenticate(self, token: str) -> TokenInfo | None:
        """The active token matching this secret, or None (unknown or revoked)."""
        with self._read() as con:
            row = con.execute(f"SELECT {_TOKEN_COLUMNS} FROM tokens "
                              "WHERE token_hash = ? AND revoked_at IS NULL",
                              (hash_token(token),)).fetchone()
        return _token_info(row) if row is not None else None


_TOKEN_COLUMNS = "name, scopes, hint, created_at, revoked_at, id"


def _token_info(row: tuple[Any, ...]) -> TokenInfo:
    name, scopes, hint, created, revoked, token_id = row
    return TokenInfo(name, tuple(json.loads(scopes)), hint, datetime.fromisoformat(created),
                     read_instant(revoked), token_id)
