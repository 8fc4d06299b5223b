"""Only regular files inside the landing zone are read, each by its exact name."""

from __future__ import annotations

from pathlib import Path

from pipelines.ingestion.landing import scan_landing, selected_files
from tests.support.landing import event, write_lines


def test_links_and_paths_outside_the_landing_zone_are_refused_not_read(tmp_path: Path):
    landing, outside = tmp_path / "landing", tmp_path / "secrets"
    landing.mkdir()
    outside.mkdir()
    secret = outside / "keys.jsonl"
    secret.write_text("sk_live_do_not_read\n")
    (landing / "stolen.jsonl").symlink_to(secret)
    (landing / "linked_folder").symlink_to(outside, target_is_directory=True)
    good = write_lines(landing / "good.jsonl", [event("e1")])

    scan = scan_landing(landing)
    assert [f.path for f in scan.files] == [str(good)]
    assert set(scan.refused) == {str(landing / "stolen.jsonl"), str(landing / "linked_folder")}
    assert "symbolic link" in scan.refused[str(landing / "stolen.jsonl")]

    named = selected_files(landing, [str(secret), str(landing / "stolen.jsonl"), str(good)])
    assert [f.path for f in named.files] == [str(good)]
    assert "outside the landing zone" in named.refused[str(secret)]
    assert "symbolic link" in named.refused[str(landing / "stolen.jsonl")]


def test_a_file_named_like_a_glob_is_read_alone(ingest, billing_env):
    landing = billing_env["landing"]
    write_lines(landing / "a1.jsonl", [event("one"), event("two")])
    starred = write_lines(landing / "a*.jsonl", [event("star")])
    bracketed = write_lines(landing / "b[1].jsonl", [event("bracket")])
    result = ingest(starred, bracketed)
    counts = {Path(c.path).name: (c.received, c.accepted) for c in result.ingested}
    assert counts == {"a*.jsonl": (1, 1), "b[1].jsonl": (1, 1)}
