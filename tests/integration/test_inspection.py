"""The ledger commands and requeue, on the real command line."""

from __future__ import annotations

import hashlib
import json
import random
import subprocess
import sys
from collections.abc import Callable

from corpus import Folders, assert_exactly_once, collection, write
from daemon_process import Daemon

Start = Callable[..., Daemon]


def _geoingest(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "geoingest", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_ledger_shows_files_and_requeue_takes_a_fixed_file_back(
    folders: Folders, start_daemon: Start
) -> None:
    good = write(folders.drop / "a" / "good.geojson", collection(random.Random(21), 3))
    broken = folders.drop / "a" / "broken.geojson"
    fixed = collection(random.Random(22), 2)
    broken.write_text(json.dumps(fixed)[:-5])
    assert start_daemon(command="once").wait() == 0
    where = ["--input", str(folders.drop), "--output", str(folders.out)]

    listing = _geoingest("ledger", "ls", *where)
    assert listing.returncode == 0
    states = sorted(line.split()[0] for line in listing.stdout.splitlines())
    assert states == ["disposed", "quarantined"]

    sha = hashlib.sha256((folders.drop / "a" / "good.geojson").read_bytes()).hexdigest()
    shown = _geoingest("ledger", "show", sha, *where)
    assert "path: a/good.geojson" in shown.stdout
    assert "state: disposed" in shown.stdout

    # The producer fixes the file in quarantine; requeue puts it back.
    quarantined = folders.out / ".geoingest" / "quarantine" / "a" / "broken.geojson"
    quarantined.write_text(json.dumps(fixed))
    requeued = _geoingest("requeue", str(quarantined), *where)
    assert requeued.returncode == 0, requeued.stderr
    assert broken.exists()
    assert not quarantined.with_name("broken.geojson.error.json").exists()
    assert start_daemon(command="once").wait() == 0
    assert_exactly_once(folders.out, good["features"] + fixed["features"])


def test_requeue_refuses_a_file_outside_quarantine(folders: Folders) -> None:
    stray = folders.drop / "x.geojson"
    stray.write_text("{}")
    result = _geoingest(
        "requeue", str(stray), "--input", str(folders.drop), "--output", str(folders.out)
    )
    assert result.returncode == 1
    assert "not a file in the quarantine folder" in result.stderr


def test_dry_run_reports_every_entry_and_changes_nothing(
    folders: Folders, start_daemon: Start
) -> None:
    rng = random.Random(23)
    done = write(folders.drop / "done.geojson", collection(rng, 1))
    assert start_daemon(command="once").wait() == 0
    before = sorted(p.name for p in folders.out.iterdir())
    write(folders.drop / "new.geojson", collection(rng, 4))
    (folders.drop / "copy.geojson").write_text(json.dumps(done))
    (folders.drop / "bad.geojson").write_text('{"type": "Point", "coordinates": [1]}')
    (folders.drop / "upload.geojson.part").write_text("{")
    (folders.drop / "link.geojson").symlink_to("/etc/hostname")
    result = _geoingest(
        "dry-run", "--input", str(folders.drop), "--output", str(folders.out), "--settle-s", "0"
    )
    assert result.returncode == 0, result.stderr
    verdicts = dict(line.split(": ", 1) for line in result.stdout.splitlines())
    drop = str(folders.drop)
    assert verdicts[f"{drop}/new.geojson"].startswith("ingest: 4 features")
    assert verdicts[f"{drop}/done.geojson"] == "skip: already ingested"
    assert verdicts[f"{drop}/copy.geojson"].startswith("duplicate: ")
    assert verdicts[f"{drop}/bad.geojson"].startswith("quarantine: position-too-short")
    assert verdicts[f"{drop}/link.geojson"] == "skip: symlink"
    assert f"{drop}/upload.geojson.part" not in verdicts
    assert sorted(p.name for p in folders.out.iterdir()) == before
    assert (folders.drop / "bad.geojson").exists()
