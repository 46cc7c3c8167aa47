"""The Prometheus metrics geoingest exports.

Every metric lives on one :class:`Metrics` object built on a registry of the
caller's choosing, so that tests get a fresh ``CollectorRegistry`` each and the
daemon gets one registry with the process collector beside it. Every label
value that can occur is created at start, so a counter reads 0 rather than
being absent until its first event.

Attribute names are the metric names without the ``geoingest_`` prefix and
without the ``_total`` suffix that prometheus-client adds to counters.
"""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
)

from geoingest import __version__

DISCOVERY_VIAS = ("backfill", "watch", "rescan")
OUTCOMES = ("ingested", "quarantined", "duplicate", "vanished", "error")
FLUSH_TRIGGERS = ("features", "bytes", "age", "shutdown")
SKIP_REASONS = ("symlink", "not-regular", "excluded", "outside-root")
RESCAN_REASONS = ("periodic", "watcher_restart", "new_directory")
REJECTION_RULES = (
    "json-syntax",
    "json-nan",
    "json-too-deep",
    "number-out-of-range",
    "encoding",
    "bom",
    "empty-file",
    "file-too-large",
    "not-geojson",
    "worker-crash",
    "internal-error",
)

_DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_LAG_BUCKETS = (0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 900.0)
_LOOP_LAG_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    """All of geoingest's metrics, registered on one registry.

    Args:
        registry: Where the metrics are registered.
        sources: The configured names of the input folders; every ``source``
            label value is created from these at start.
        rules: Rejection rule ids to pre-create on ``files_rejected``, in
            addition to the built-in list.

    Example:
        >>> m = Metrics(CollectorRegistry(), sources=["drop"])
        >>> m.files_processed.labels(source="drop", outcome="ingested").inc()
        >>> m.files_processed.labels(source="drop", outcome="ingested")._value.get()
        1.0
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        sources: Sequence[str],
        rules: Sequence[str] = (),
    ) -> None:
        self.registry = registry

        # Discovery: what the walks and the watcher hand on.
        self.files_discovered = Counter(
            "geoingest_files_discovered",
            "Files found in an input folder and handed on for ingest.",
            ["source", "via"],
            registry=registry,
        )
        self.watch_rescans = Counter(
            "geoingest_watch_rescans",
            "Walks of the input folders run beside the watcher, by reason.",
            ["reason"],
            registry=registry,
        )
        self.watch_missed_files = Counter(
            "geoingest_watch_missed_files",
            "Files a walk found that the watcher had not reported, by walk reason.",
            ["reason"],
            registry=registry,
        )
        self.backlog_files = Gauge(
            "geoingest_backlog_files",
            "Files discovered and not yet finished: settling, queued or in progress.",
            ["source"],
            registry=registry,
        )
        self.backlog_oldest_file_timestamp_seconds = Gauge(
            "geoingest_backlog_oldest_file_timestamp_seconds",
            "Modification time of the oldest file in the backlog, 0 when it is empty.",
            ["source"],
            registry=registry,
        )
        self.skipped_files = Counter(
            "geoingest_skipped_files",
            "Entries in the input folders that are not ingested, by reason.",
            ["reason"],
            registry=registry,
        )

        # Queue and workers.
        self.queue_length = Gauge(
            "geoingest_queue_length",
            "Settled files waiting for a worker.",
            registry=registry,
        )
        self.queue_capacity = Gauge(
            "geoingest_queue_capacity",
            "Size of the bounded queue between discovery and the workers.",
            registry=registry,
        )
        self.files_in_progress = Gauge(
            "geoingest_files_in_progress",
            "Files being read, parsed, validated or transformed right now.",
            registry=registry,
        )
        self.concurrency_limit = Gauge(
            "geoingest_concurrency_limit",
            "Current limit on files in flight at once.",
            registry=registry,
        )
        self.files_processed = Counter(
            "geoingest_files_processed",
            "Files that left the pipeline, by outcome.",
            ["source", "outcome"],
            registry=registry,
        )
        self.files_rejected = Counter(
            "geoingest_files_rejected",
            "Files moved to quarantine, by the rule they broke.",
            ["rule"],
            registry=registry,
        )
        self.file_processing_duration_seconds = Histogram(
            "geoingest_file_processing_duration_seconds",
            "Time from a worker taking a file to its result, in seconds.",
            buckets=_DURATION_BUCKETS,
            registry=registry,
        )
        self.input_bytes = Counter(
            "geoingest_input_bytes",
            "Bytes read from input files.",
            registry=registry,
        )

        # Batches and output.
        self.features_written = Counter(
            "geoingest_features_written",
            "Features committed to the output.",
            registry=registry,
        )
        self.output_bytes = Counter(
            "geoingest_output_bytes",
            "Bytes of committed batch files.",
            registry=registry,
        )
        self.batches_flushed = Counter(
            "geoingest_batches_flushed",
            "Batches committed, by what triggered the flush.",
            ["trigger"],
            registry=registry,
        )
        self.batch_flush_failures = Counter(
            "geoingest_batch_flush_failures",
            "Attempts to commit a batch that failed and will be retried.",
            registry=registry,
        )
        self.batch_flush_duration_seconds = Histogram(
            "geoingest_batch_flush_duration_seconds",
            "Time to write, sync and rename one batch, in seconds.",
            buckets=_DURATION_BUCKETS,
            registry=registry,
        )
        self.last_flush_timestamp_seconds = Gauge(
            "geoingest_last_flush_timestamp_seconds",
            "Unix time of the last committed batch, 0 before the first.",
            registry=registry,
        )
        self.ingest_lag_seconds = Histogram(
            "geoingest_ingest_lag_seconds",
            "Time from a file's modification to the commit of its batch, in seconds.",
            buckets=_LAG_BUCKETS,
            registry=registry,
        )

        # The service itself.
        self.event_loop_lag_seconds = Histogram(
            "geoingest_event_loop_lag_seconds",
            "How late a periodic tick of the event loop ran, in seconds.",
            buckets=_LOOP_LAG_BUCKETS,
            registry=registry,
        )
        self.ready = Gauge(
            "geoingest_ready",
            "1 while the daemon is ready (inputs watched, output and state writable).",
            registry=registry,
        )
        self.build_info = Info(
            "geoingest_build",
            "The running version of geoingest.",
            registry=registry,
        )
        self.build_info.info({"version": __version__})
        self._create_label_values(sources, rules)

    def _create_label_values(self, sources: Sequence[str], rules: Sequence[str]) -> None:
        """Create every label value that can occur, so each series starts at 0."""
        for source in sources:
            self.backlog_files.labels(source=source)
            self.backlog_oldest_file_timestamp_seconds.labels(source=source)
            for via in DISCOVERY_VIAS:
                self.files_discovered.labels(source=source, via=via)
            for outcome in OUTCOMES:
                self.files_processed.labels(source=source, outcome=outcome)
        for reason in RESCAN_REASONS:
            self.watch_rescans.labels(reason=reason)
            self.watch_missed_files.labels(reason=reason)
        for trigger in FLUSH_TRIGGERS:
            self.batches_flushed.labels(trigger=trigger)
        for rule in (*REJECTION_RULES, *rules):
            self.files_rejected.labels(rule=rule)
        for reason in SKIP_REASONS:
            self.skipped_files.labels(reason=reason)


class Children:
    """The labelled children of one counter, each looked up once.

    ``labels()`` checks its arguments and takes a lock on every call; a file
    passes several counters on its way, so the hot path keeps the children.

    Example:
        >>> m = Metrics(CollectorRegistry(), ["drop"])
        >>> processed = Children(m.files_processed)
        >>> processed("drop", "ingested") is processed("drop", "ingested")
        True
    """

    def __init__(self, counter: Counter) -> None:
        self._counter = counter
        self._children: dict[tuple[str, ...], Counter] = {}

    def __call__(self, *values: str) -> Counter:
        """The child for these label values, in the order of the counter's label names."""
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self._counter.labels(*values)
        return child


def process_registry() -> CollectorRegistry:
    """Return a registry holding the process and platform collectors.

    The ``process_*`` series (open file descriptors, memory, CPU) describe the
    main process, which is where the metrics endpoint lives.
    """
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    return registry
