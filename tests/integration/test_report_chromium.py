"""`billing report`'s page as a browser shows it: rendered in headless Chromium (a
subprocess), its sections and charts read back from the DOM and a full-page screenshot taken."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from tests.support.finance_report import CHARTS, SECTION_IDS, parse


def _chromium() -> str:
    """The Chromium to render with: $CHROMIUM, /usr/bin/chromium or `chromium` on PATH.
    Missing: skip, unless BILLING_REQUIRE_CHROMIUM=1 (CI), which fails instead."""
    explicit = os.environ.get("CHROMIUM")
    candidates = [explicit] if explicit else ["/usr/bin/chromium", shutil.which("chromium")]
    for candidate in candidates:
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    reason = (f"CHROMIUM={explicit!r} is not an executable" if explicit
              else "no Chromium found (/usr/bin/chromium, chromium on PATH; or set CHROMIUM)")
    if os.environ.get("BILLING_REQUIRE_CHROMIUM") == "1":
        pytest.fail(f"BILLING_REQUIRE_CHROMIUM=1 but {reason}")
    pytest.skip(reason)


def _headless(binary: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
               "--no-first-run", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", f"--user-data-dir={profile}",
               *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    return result


def test_report_renders_in_headless_chromium(report: dict[str, object], tmp_path: Path) -> None:
    binary = _chromium()
    url = Path(str(report["page"])).resolve().as_uri()
    dom = _headless(binary, tmp_path / "profile", "--dump-dom", url).stdout
    page = parse(dom)
    assert page.sections == SECTION_IDS
    for section, charts in CHARTS.items():
        assert page.svgs.get(section) == charts, section
    assert ["EUR", "starter", "Starter", "2", "1,234.50"] in page.body("revenue", "revenue")

    png = tmp_path / "page.png"
    _headless(binary, tmp_path / "profile", f"--screenshot={png}", "--window-size=1280,4000",
              "--hide-scrollbars", url)
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1280, 4000)
    assert len(data) > 60_000  # a blank page compresses to a few KB
