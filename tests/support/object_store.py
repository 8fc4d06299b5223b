"""A local S3-compatible server (moto's, on 127.0.0.1) and a landing zone in one of its buckets.

Imported only by the tests of an s3:// landing zone (moto is a dev dependency). Credentials are
made up; the secret is distinctive so a test can show it is never written to a log.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

SECRET = "s3cr3t-landing-key-never-logged"
_buckets = itertools.count(1)


@pytest.fixture(scope="module")
def s3_server() -> Iterator[str]:
    """moto's S3 server on a free port of 127.0.0.1, for one test module: its URL."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@dataclass
class S3Landing:
    """A bucket on the local server whose `events/` prefix is BILLING_LANDING."""

    endpoint: str
    bucket: str
    prefix: str = "events"

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def client(self) -> Any:
        """A boto3 client of the local server (boto3's client types are generated)."""
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id="testing",
                            aws_secret_access_key=SECRET, region_name="us-east-1")

    def put(self, key: str, body: bytes | str) -> str:
        """Upload `body` under `key` (relative to the bucket); its s3:// URL."""
        data = body.encode() if isinstance(body, str) else body
        self.client().put_object(Bucket=self.bucket, Key=key, Body=data)
        return f"s3://{self.bucket}/{key}"

    def land(self, name: str, body: bytes | str) -> str:
        """Upload `body` as `name` in the landing prefix; its s3:// URL."""
        return self.put(f"{self.prefix}/{name}", body)


@pytest.fixture
def s3_landing(s3_server: str, billing_env: dict[str, Path],
               monkeypatch: pytest.MonkeyPatch) -> S3Landing:
    """BILLING_LANDING on a fresh bucket of the local server, credentials and endpoint in the
    environment only (as a deployment's Secret gives them), staging beside the warehouse."""
    landing = S3Landing(s3_server, f"billing-landing-{next(_buckets)}")
    landing.client().create_bucket(Bucket=landing.bucket)
    monkeypatch.setenv("BILLING_LANDING", landing.url)
    monkeypatch.setenv("BILLING_S3_ENDPOINT_URL", s3_server)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    for name in ("AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3",
                 "AWS_PROFILE", "BILLING_LANDING_STAGING"):
        monkeypatch.delenv(name, raising=False)
    return landing
