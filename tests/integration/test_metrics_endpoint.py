"""The real ``/metrics``, ``/healthz`` and ``/readyz`` of a running daemon.

Every counter is checked against a corpus whose truth the test knows: how many
files of each kind, how many features, how many bytes. The scrapes are parsed
with prometheus-client's own parser and linted with ``promtool check metrics``.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import shutil
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from prometheus_client.parser import text_string_to_metric_families

from geoingest import __version__
from geoingest.geojson import ERROR_RULES

import corpus
from corpus import Folders, collection, output_features, write
from daemon_process import Daemon

Start = Callable[..., Daemon]
Labels = tuple[tuple[str, str], ...]

SCRAPE_DEADLINE_S = 0.1
SOURCE = "drop"
# Every label value the daemon can give these series, written out so that a
# value that goes missing from the start-up scrape fails a test.
LABELS_AT_START: dict[str, list[dict[str, str]]] = {
    "geoingest_files_discovered_total": [
        {"source": SOURCE, "via": via} for via in ("backfill", "watch", "rescan")
    ],
    "geoingest_files_processed_total": [
        {"source": SOURCE, "outcome": outcome}
        for outcome in ("ingested", "quarantined", "duplicate", "vanished", "error")
    ],
    "geoingest_batches_flushed_total": [
        {"trigger": trigger} for trigger in ("features", "bytes", "age", "shutdown")
    ],
    "geoingest_skipped_files_total": [
        {"reason": reason} for reason in ("symlink", "not-regular", "excluded", "outside-root")
    ],
    "geoingest_watch_rescans_total": [
        {"reason": reason} for reason in ("periodic", "watcher_restart", "new_directory")
    ],
    "geoingest_watch_missed_files_total": [
        {"reason": reason} for reason in ("periodic", "watcher_restart", "new_directory")
    ],
    "geoingest_backlog_files": [{"source": SOURCE}],
    "geoingest_backlog_oldest_file_timestamp_seconds": [{"source": SOURCE}],
}
# Rules a file can be rejected by: the validator's catalogue, plus the two the
# pipeline itself decides.
REJECTION_RULES = sorted({*ERROR_RULES, "file-too-large", "worker-crash", "internal-error"})


@dataclass(frozen=True)
class Scrape:
    """One answer of ``/metrics``: its text, and every sample by name and labels."""

    text: str
    samples: dict[tuple[str, Labels], float]

    @classmethod
    def parse(cls, text: str) -> Scrape:
        """Parse the Prometheus text format with prometheus-client's parser."""
        samples = {
            (sample.name, _labels(sample.labels)): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }
        return cls(text, samples)

    def value(self, name: str, **labels: str) -> float:
        """The value of one series; a missing series fails the test."""
        key = (name, _labels(labels))
        assert key in self.samples, f"no series {name}{labels}"
        return self.samples[key]

    def series(self, name: str) -> dict[Labels, float]:
        """Every series of one sample name, by labels."""
        return {labels: v for (sample, labels), v in self.samples.items() if sample == name}


def _labels(labels: dict[str, str]) -> Labels:
    return tuple(sorted(labels.items()))


def get(url: str, path: str) -> tuple[int, bytes, float]:
    """GET ``path`` on a fresh connection; return the status, the body and the seconds taken."""
    started = time.perf_counter()
    connection = http.client.HTTPConnection(urlsplit(url).netloc, timeout=5)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        body = response.read()
    finally:
        connection.close()
    return response.status, body, time.perf_counter() - started


def scrape(daemon: Daemon) -> Scrape:
    """Read and parse the daemon's ``/metrics``."""
    status, body, _ = get(daemon.metrics_url, "/metrics")
    assert status == 200
    return Scrape.parse(body.decode())


def assert_promtool_clean(text: str) -> None:
    """``promtool check metrics`` accepts the exposition without a single remark."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is missing: install it with `apt-get install -y prometheus`")
    result = subprocess.run(
        [promtool, "check", "metrics"],
        input=text,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def _counters(scrape: Scrape) -> dict[tuple[str, Labels], float]:
    """Every sample of geoingest's own counters."""
    return {
        key: value
        for key, value in scrape.samples.items()
        if key[0].startswith("geoingest_") and key[0].endswith("_total")
    }


def wait_for_scrape(
    daemon: Daemon, predicate: Callable[[Scrape], bool], timeout_s: float = 20.0
) -> Scrape:
    """Scrape until ``predicate`` holds for a scrape, and return that scrape."""
    found: list[Scrape] = []

    def holds() -> bool:
        found.append(scrape(daemon))
        return predicate(found[-1])

    daemon.wait_for(holds, timeout_s)
    return found[-1]


def test_every_label_value_is_exported_at_zero_from_the_start(start_daemon: Start) -> None:
    daemon = start_daemon("--rescan-interval-s", "60")
    daemon.wait_for_event("watching")
    first = scrape(daemon)

    for name, label_sets in LABELS_AT_START.items():
        assert first.series(name) == {_labels(labels): 0.0 for labels in label_sets}, name
    assert {key: v for key, v in _counters(first).items() if v} == {}
    assert_promtool_clean(first.text)
    assert daemon.stop() == 0


def test_every_rejection_rule_is_exported_at_zero_from_the_start(start_daemon: Start) -> None:
    daemon = start_daemon()
    daemon.wait_for_event("watching")
    first = scrape(daemon)
    assert first.series("geoingest_files_rejected_total") == {
        _labels({"rule": rule}): 0.0 for rule in REJECTION_RULES
    }
    assert daemon.stop() == 0


@dataclass
class Truth:
    """What the daemon was given, as its counters should count it."""

    features: list[dict[str, Any]] = field(default_factory=list)
    input_bytes: int = 0
    ingested: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    discovered: Counter[str] = field(default_factory=Counter)

    @property
    def files(self) -> int:
        """Every input file, valid or not."""
        return self.ingested + self.rejected.total()

    def add_valid(self, path: Path, doc: dict[str, Any], via: str) -> None:
        """Count one valid file, already written."""
        self.features += corpus.features_of(doc)
        self.ingested += 1
        self._count(path, via)

    def add_broken(self, path: Path, text: bytes, rule: str, via: str) -> None:
        """Write one file that breaks ``rule``, and count it."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text)
        self.rejected[rule] += 1
        self._count(path, via)

    def _count(self, path: Path, via: str) -> None:
        self.input_bytes += path.stat().st_size
        self.discovered[via] += 1

    def counters(self, batches: int, output_bytes: int) -> dict[tuple[str, Labels], float]:
        """Every counter sample that should be above 0, by name and labels."""
        processed, rejected = "geoingest_files_processed_total", "geoingest_files_rejected_total"
        expected = [
            _sample(processed, self.ingested, source=SOURCE, outcome="ingested"),
            _sample(processed, self.rejected.total(), source=SOURCE, outcome="quarantined"),
            _sample("geoingest_input_bytes_total", self.input_bytes),
            _sample("geoingest_features_written_total", len(self.features)),
            _sample("geoingest_output_bytes_total", output_bytes),
            _sample("geoingest_batches_flushed_total", batches, trigger="age"),
            _sample("geoingest_skipped_files_total", 1, reason="symlink"),
            _sample("geoingest_skipped_files_total", 1, reason="not-regular"),
            _sample("geoingest_skipped_files_total", 1, reason="excluded"),
        ]
        expected += [_sample(rejected, n, rule=rule) for rule, n in self.rejected.items()]
        expected += [
            _sample("geoingest_files_discovered_total", n, source=SOURCE, via=via)
            for via, n in self.discovered.items()
        ]
        return dict(expected)


def _sample(name: str, value: int, **labels: str) -> tuple[tuple[str, Labels], float]:
    return (name, _labels(labels)), float(value)


def _polygon_with_open_ring() -> bytes:
    ring = [[0, 0], [1, 0], [1, 1], [0, 1]]
    return json.dumps({"type": "Polygon", "coordinates": [ring]}).encode()


def _drop_backfill(folders: Folders, truth: Truth, outside: Path) -> None:
    """Valid and broken files, a symlink, a FIFO and a dot-file, all there before the start."""
    rng = random.Random(61)
    for i in range(6):
        path = folders.drop / ("sub" if i % 3 == 0 else "") / f"b{i}.geojson"
        truth.add_valid(path, write(path, collection(rng, i + 1)), "backfill")
    truth.add_broken(
        folders.drop / "truncated.geojson", b'{"type": "Feat', "json-syntax", "backfill"
    )
    truth.add_broken(folders.drop / "sub" / "empty.geojson", b"", "empty-file", "backfill")
    truth.add_broken(
        folders.drop / "open.geojson", _polygon_with_open_ring(), "ring-not-closed", "backfill"
    )
    truth.add_broken(folders.drop / "array.geojson", b"[1, 2]", "not-geojson", "backfill")
    write(outside, collection(rng, 2))
    (folders.drop / "link.geojson").symlink_to(outside)
    os.mkfifo(folders.drop / "pipe.geojson")
    write(folders.drop / ".hidden.geojson", collection(rng, 2))


def _drop_while_watching(folders: Folders, truth: Truth) -> None:
    """Valid files and one broken file, dropped after the backfill walk is over."""
    rng = random.Random(62)
    for i in range(4):
        path = folders.drop / f"w{i}.geojson"
        truth.add_valid(path, write(path, collection(rng, i + 2)), "watch")
    bom = b"\xef\xbb\xbf" + json.dumps(collection(rng, 1)).encode()
    truth.add_broken(folders.drop / "bom.geojson", bom, "bom", "watch")


def _batch_files(folders: Folders) -> list[Path]:
    return sorted(folders.out.glob("batch-*.geojson"))


def test_counters_match_what_was_ingested(
    folders: Folders, start_daemon: Start, tmp_path: Path
) -> None:
    truth = Truth()
    _drop_backfill(folders, truth, tmp_path / "outside.geojson")
    started_at = time.time()
    daemon = start_daemon(
        "--rescan-interval-s", "60", "--queue-size", "77", "--max-concurrency", "5"
    )
    daemon.wait_for_event("backfill_finished")
    _drop_while_watching(folders, truth)
    files = truth.files

    # Wait until every file has left the pipeline and the gauges, which are refreshed
    # every half second or so, have caught up with it.
    def settled(s: Scrape) -> bool:
        done = sum(s.series("geoingest_files_processed_total").values()) == files
        gauges = [
            s.value("geoingest_backlog_files", source=SOURCE),
            s.value("geoingest_queue_length"),
            s.value("geoingest_files_in_progress"),
        ]
        return done and gauges == [0, 0, 0]

    final = wait_for_scrape(daemon, settled)
    batches = _batch_files(folders)
    output_bytes = sum(path.stat().st_size for path in batches)

    # Every counter, labelled or not, is what the corpus says, and 0 where it says nothing.
    expected = truth.counters(len(batches), output_bytes)
    counters = _counters(final)
    assert {key: v for key, v in counters.items() if v or key in expected} == expected
    assert len(output_features(folders.out)) == len(truth.features)
    assert final.value("geoingest_file_processing_duration_seconds_count") == files
    assert final.value("geoingest_ingest_lag_seconds_count") == truth.ingested
    assert final.value("geoingest_batch_flush_duration_seconds_count") == len(batches)

    # The gauges.
    assert started_at < final.value("geoingest_last_flush_timestamp_seconds") <= time.time()
    assert final.value("geoingest_backlog_oldest_file_timestamp_seconds", source=SOURCE) == 0
    assert final.value("geoingest_queue_length") == 0
    assert final.value("geoingest_queue_capacity") == 77
    assert final.value("geoingest_concurrency_limit") == 5
    assert final.value("geoingest_ready") == 1
    assert final.value("geoingest_build_info", version=__version__) == 1
    assert_promtool_clean(final.text)

    assert daemon.stop() == 0
    corpus.assert_exactly_once(folders.out, truth.features)


def test_a_file_without_features_adds_no_batch(folders: Folders, start_daemon: Start) -> None:
    daemon = start_daemon("--rescan-interval-s", "60")
    daemon.wait_for_event("watching")
    write(folders.drop / "nothing.geojson", {"type": "FeatureCollection", "features": []})

    def ingested(s: Scrape) -> bool:
        return s.value("geoingest_files_processed_total", source=SOURCE, outcome="ingested") == 1

    final = wait_for_scrape(daemon, ingested)
    assert final.value("geoingest_output_bytes_total") == 0
    assert sum(final.series("geoingest_batches_flushed_total").values()) == len(
        _batch_files(folders)
    )
    assert daemon.stop() == 0


def _drop_heavy_files(drop: Path, count: int) -> int:
    """Drop ``count`` files of 60 eight-position lines each (about 20 KB); return the features."""
    rng = random.Random(63)
    features = [
        {
            "type": "Feature",
            "geometry": {
                "type": "LineString",
                "coordinates": [
                    [round(rng.uniform(-180, 180), 9), round(rng.uniform(-90, 90), 9)]
                    for _ in range(8)
                ],
            },
            "properties": {"file": "FILE", "n": n},
        }
        for n in range(60)
    ]
    # One template, made unique per file so that content deduplication keeps every file.
    template = json.dumps({"type": "FeatureCollection", "features": features})
    for i in range(count):
        (drop / f"heavy-{i:05d}.geojson").write_text(template.replace('"FILE"', str(i)))
    return count * len(features)


def _running_helpers(daemon: Daemon) -> int:
    """How many of the daemon's worker processes are running or waiting for a CPU right now.

    They are the processes of the daemon's session other than the daemon
    itself; the forkserver and the resource tracker among them are asleep.
    """
    running = 0
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text() if entry.name.isdigit() else ""
        except OSError:
            continue
        # The fields after the command name: the state (field 3 in proc(5)), then the
        # parent, the process group and the session (field 6).
        fields = stat.rpartition(")")[2].split()
        if not fields or int(fields[3]) != daemon.proc.pid or entry.name == str(daemon.proc.pid):
            continue
        running += fields[0] == "R"
    return running


def _value_in(text: str, series: str) -> float:
    """One unlabelled series read from the text format, cheaply enough to do between scrapes."""
    start = text.index(f"\n{series} ") + len(series) + 2
    return float(text[start : text.index("\n", start)])


def test_metrics_answer_within_100_ms_while_the_workers_are_saturated(
    folders: Folders, start_daemon: Start
) -> None:
    features = _drop_heavy_files(folders.drop, 3000)
    daemon = start_daemon()
    daemon.wait_for_event("watching")
    url = daemon.metrics_url

    # Scrape as a Prometheus server would, from another process, until every file is in,
    # noting each time how many workers were busy.
    timings: list[float] = []
    both_busy = 0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status, body, seconds = get(url, "/metrics")
        assert status == 200
        timings.append(seconds)
        both_busy += _running_helpers(daemon) >= 2
        if _value_in(body.decode(), "geoingest_features_written_total") == features:
            break
        time.sleep(0.02)

    slowest = [round(t, 3) for t in sorted(timings)[-5:]]
    assert len(timings) >= 20, f"only {len(timings)} scrapes while the corpus was ingested"
    assert both_busy >= len(timings) / 4, f"both workers busy at {both_busy} of {len(timings)}"
    assert max(timings) < SCRAPE_DEADLINE_S, f"the slowest scrapes took {slowest} s"
    assert daemon.stop() == 0


def test_health_and_readiness_answer_once_watching_and_nothing_else_does(
    start_daemon: Start,
) -> None:
    daemon = start_daemon()
    daemon.wait_for_event("watching")
    url = daemon.metrics_url

    assert get(url, "/healthz")[:2] == (200, b"ok\n")
    assert get(url, "/readyz")[:2] == (200, b"ready\n")
    for path in ("/", "/metric", "/metrics/x", "/healthz/", "/ready", "/favicon.ico"):
        assert get(url, path)[0] == 404, path
    assert daemon.stop() == 0
