"""What ``scripts/bench`` measured, summarised: medians and spread per case and
connection count, the ratios issue 11 sets targets for, and the files of a
run — ``bench/results/<stem>.json`` (every run), ``<stem>.md`` (the tables)
and ``<stem>-api.png`` / ``<stem>-oauth.png`` (throughput and p99 against
connections)."""

from __future__ import annotations

import json
import statistics
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from cases import BATCH_ITEMS, CONNECTIONS, Case
from wrk import WrkResult

__all__ = ["Point", "Report", "Run", "TargetCheck"]

RSS_LIMIT_MB = 300.0


@dataclass(frozen=True)
class Run:
    """One measured wrk run."""

    case: str
    repeat: int
    connections: int
    requests_per_second: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    requests: int
    errors: int
    error_detail: str
    cpu_us_per_request: float
    paced: bool = False  # connections paced to about half the peak (p99 at half load)
    busy: str | None = None  # the cores were not idle before it

    @classmethod
    def of(
        cls,
        case: str,
        repeat: int,
        connections: int,
        result: WrkResult,
        cpu_seconds: float,
        *,
        paced: bool,
        busy: str | None,
    ) -> Run:
        detail = ", ".join(
            f"{count} {name}"
            for name, count in (
                ("non-2xx", result.non_2xx),
                ("socket errors/timeouts", result.socket_errors),
                ("unexpected bodies", result.unexpected),
                ("sent past the end of the distinct requests", result.exhausted),
                ("(no request answered at all)", 0 if result.requests else 1),
            )
            if count
        )
        return cls(
            case=case,
            repeat=repeat,
            connections=connections,
            requests_per_second=result.requests_per_second,
            p50_ms=result.p50_ms,
            p90_ms=result.p90_ms,
            p99_ms=result.p99_ms,
            requests=result.requests,
            errors=result.errors or (0 if result.requests else 1),
            error_detail=detail,
            cpu_us_per_request=cpu_seconds * 1e6 / max(1, result.requests),
            paced=paced,
            busy=busy,
        )

    def line(self) -> str:
        label = f"{self.case} run {self.repeat} c={self.connections}" + (
            " paced" if self.paced else ""
        )
        text = (
            f"{label:<28} {self.requests_per_second:>9.0f} req/s  p50 {self.p50_ms:7.2f} ms  "
            f"p99 {self.p99_ms:8.2f} ms  server CPU {self.cpu_us_per_request:7.1f} µs/req"
        )
        if self.errors:
            text += f"  ERRORS: {self.error_detail}"
        if self.busy:
            text += f"  (warning: {self.busy})"
        return text


@dataclass(frozen=True)
class Point:
    """A case at one connection count, over its repeats: medians and range."""

    case: str
    connections: int
    paced: bool
    runs: int
    rps_median: float
    rps_min: float
    rps_max: float
    p50_ms: float
    p99_ms: float
    cpu_us_per_request: float
    errors: int
    busy_runs: int


@dataclass(frozen=True)
class TargetCheck:
    """One row of issue 11's table: what was measured against its target."""

    name: str
    measured: str
    target: str
    met: bool | None  # None: could not be measured (see note)
    note: str = ""

    @property
    def verdict(self) -> str:
        return "n/a" if self.met is None else "met" if self.met else "not met"


@dataclass
class Report:
    started: str
    mode: str
    repeats: int
    duration_s: float
    machine: str
    finished: str = ""
    runs: list[Run] = field(default_factory=list)
    rss_mb: dict[str, list[float]] = field(default_factory=dict)  # worker RSS after each case run
    unavailable: dict[str, str] = field(default_factory=dict)
    failures: dict[str, list[str]] = field(default_factory=dict)
    seeding: dict[str, float] = field(default_factory=dict)  # seconds per data set
    versions: dict[str, dict[str, str]] = field(default_factory=dict)
    micro: dict[str, str] = field(default_factory=dict)

    def add(self, run: Run) -> None:
        self.runs.append(run)

    # --- summaries ----------------------------------------------------------

    def points(self) -> list[Point]:
        groups: dict[tuple[str, int, bool], list[Run]] = {}
        for run in self.runs:
            groups.setdefault(
                (run.case, run.connections if not run.paced else 0, run.paced), []
            ).append(run)
        points = []
        for (case, _, paced), runs in groups.items():
            rps = [r.requests_per_second for r in runs]
            points.append(
                Point(
                    case=case,
                    connections=round(statistics.median(r.connections for r in runs)),
                    paced=paced,
                    runs=len(runs),
                    rps_median=statistics.median(rps),
                    rps_min=min(rps),
                    rps_max=max(rps),
                    p50_ms=statistics.median(r.p50_ms for r in runs),
                    p99_ms=statistics.median(r.p99_ms for r in runs),
                    cpu_us_per_request=statistics.median(r.cpu_us_per_request for r in runs),
                    errors=sum(r.errors for r in runs),
                    busy_runs=sum(1 for r in runs if r.busy),
                )
            )
        return points

    def peak(self, case: str) -> Point | None:
        """The connection count with the highest median throughput, among those
        whose runs all answered correctly."""
        candidates = [p for p in self.points() if p.case == case and not p.paced and not p.errors]
        return max(candidates, key=lambda p: p.rps_median, default=None)

    def paced(self, case: str) -> Point | None:
        return next((p for p in self.points() if p.case == case and p.paced), None)

    def _missing(self, case: str) -> str:
        if case in self.unavailable:
            return f"({case}) {self.unavailable[case]}"
        if case in self.failures:
            return f"({case}) failed"
        if any(r.case == case for r in self.runs):
            return f"({case}) every run had errors"
        return f"({case}) not run"

    def targets(self) -> list[TargetCheck]:
        """Issue 11's targets, each next to what this run measured."""
        checks: list[TargetCheck] = []

        def ratio(
            name: str,
            numerator: str,
            denominators: tuple[str, ...],
            minimum: float,
            scale: float = 1.0,
        ) -> None:
            top = self.peak(numerator)
            bottoms = [(d, self.peak(d)) for d in denominators]
            found = [(d, p) for d, p in bottoms if p is not None]
            if top is None or not found:
                missing = [self._missing(numerator)] if top is None else []
                missing += [self._missing(d) for d, p in bottoms if p is None]
                checks.append(TargetCheck(name, "n/a", f"≥ {minimum:g}×", None, "; ".join(missing)))
                return
            label, bottom = max(found, key=lambda item: item[1].rps_median)
            value = top.rps_median * scale / bottom.rps_median
            note = (
                f"{top.rps_median * scale:,.0f}/s (c={top.connections}) vs "
                f"{bottom.rps_median:,.0f}/s ({label}, c={bottom.connections})"
            )
            checks.append(
                TargetCheck(name, f"{value:.2f}×", f"≥ {minimum:g}×", value >= minimum, note)
            )

        def half_load(name: str, case: str, limit_ms: float) -> None:
            point, peak = self.paced(case), self.peak(case)
            if point is None or peak is None or point.errors:
                checks.append(
                    TargetCheck(
                        name,
                        "n/a",
                        f"≤ {limit_ms:g} ms",
                        None,
                        self._missing(case)
                        if peak is None
                        else "not measured (paced runs need a full run)",
                    )
                )
                return
            share = point.rps_median / peak.rps_median
            note = (
                f"{point.rps_median:,.0f}/s = {share:.0%} of peak, "
                f"{point.connections} paced connections"
            )
            checks.append(
                TargetCheck(
                    name,
                    f"{point.p99_ms:.2f} ms",
                    f"≤ {limit_ms:g} ms",
                    point.p99_ms <= limit_ms,
                    note,
                )
            )

        ratio("(b) signed call / (a) raw hello, req/s", "b", ("a",), 0.50)
        half_load("(b) p99 at half load", "b", 5)
        ratio("(c) signed on PostgreSQL + Redis / (a)", "c", ("a",), 0.30)
        half_load("(c) p99 at half load", "c", 10)
        ratio("(d) token endpoint / Authlib", "d", ("authlib-d",), 10)
        ratio("(d) token endpoint / DOT (faster variant)", "d", ("dot-plain-d", "dot-hashed-d"), 20)
        ratio("(e) introspection / Authlib", "e", ("authlib-e",), 10)
        ratio("(e) introspection / DOT (faster variant)", "e", ("dot-plain-e", "dot-hashed-e"), 20)
        ratio("(f) batch.run items/s / (b) signed calls/s", "f", ("b",), 8, scale=BATCH_ITEMS)
        ratio("(g) signed call, 1M tokens / 1k", "g-b", ("b",), 0.90)
        ratio("(g) token endpoint, 1M tokens / 1k", "g-d", ("d",), 0.90)
        ratio("(g) introspection, 1M tokens / 1k", "g-e", ("e",), 0.90)
        after_g = {case: mb for case, mb in self.rss_mb.items() if case.startswith("g-")}
        platform_cases = {"b", "c", "d", "e", "f"}
        measured = after_g or {
            case: mb for case, mb in self.rss_mb.items() if case in platform_cases
        }
        if measured:
            largest = max(max(values) for values in measured.values())
            where = (
                "after the 1M-token cases"
                if after_g
                else "after the 1k cases only (no (g) in this run)"
            )
            checks.append(
                TargetCheck(
                    "(h) worker RSS",
                    f"{largest:.0f} MB",
                    f"≤ {RSS_LIMIT_MB:g} MB",
                    largest <= RSS_LIMIT_MB,
                    where,
                )
            )
        else:
            checks.append(
                TargetCheck(
                    "(h) worker RSS", "n/a", f"≤ {RSS_LIMIT_MB:g} MB", None, "no platform case ran"
                )
            )
        return checks

    # --- output -------------------------------------------------------------

    def markdown(self, cases: Mapping[str, Case]) -> str:
        lines = [
            f"# openplatform bench, {self.started} ({self.mode})",
            "",
            f"{self.machine}. Server: 1 worker pinned to CPU 0; wrk pinned to CPU 1 (one "
            "thread; signed calls: one per connection); "
            f"{self.repeats} interleaved run(s) of {self.duration_s:g} s per point, each case on a "
            "fresh server and a fresh copy of its data. req/s: median (min–max over the runs); "
            "p50/p99: medians; server CPU: user + system time of all the server's processes per "
            "request. Ratios use each case's peak (the connection count with the highest median).",
            "",
            "## Targets (issue 11)",
            "",
            "| target | measured | goal | verdict | detail |",
            "|---|---|---|---|---|",
        ]
        for check in self.targets():
            cells = (check.name, check.measured, check.target, check.verdict, check.note)
            lines.append("| " + " | ".join(cells) + " |")
        lines += [
            "",
            "## Cases",
            "",
            "| case | what | connections | req/s | p50 ms | p99 ms | server CPU µs/req | errors |",
            "|---|---|---|---|---|---|---|---|",
        ]
        order = {key: n for n, key in enumerate(cases)}
        for point in sorted(
            self.points(), key=lambda p: (order.get(p.case, 99), p.paced, p.connections)
        ):
            connections = (
                f"{point.connections} paced (half load)" if point.paced else str(point.connections)
            )
            spread = f"{point.rps_median:,.0f} ({point.rps_min:,.0f}–{point.rps_max:,.0f})"
            errors = str(point.errors) + (
                f", {point.busy_runs} run(s) on busy cores" if point.busy_runs else ""
            )
            lines.append(
                f"| {point.case} | {cases[point.case].title} | {connections} | {spread} | "
                f"{point.p50_ms:.2f} | {point.p99_ms:.2f} | {point.cpu_us_per_request:.0f} | "
                f"{errors} |"
            )
        notes = [f"- ({case}) n/a: {why}" for case, why in self.unavailable.items()]
        notes += [f"- ({case}) failed: {'; '.join(why)}" for case, why in self.failures.items()]
        notes += [f"- run with errors: {r.line()}" for r in self.runs if r.errors]
        if self.rss_mb:
            notes.append(
                "- worker RSS after each case run (MB): "
                + "; ".join(
                    f"{case} {', '.join(f'{mb:.0f}' for mb in values)}"
                    for case, values in self.rss_mb.items()
                )
            )
        if self.seeding:
            notes.append(
                "- data sets seeded in (s): "
                + ", ".join(f"{name} {s:g}" for name, s in self.seeding.items())
            )
        for peer, versions in self.versions.items():
            notes.append(
                f"- {peer}: "
                + ", ".join(f"{name} {version}" for name, version in sorted(versions.items()))
            )
        lines += ["", "## Notes", "", *notes]
        for script, output in self.micro.items():
            lines += ["", f"## {script}", "", "```", output.rstrip(), "```"]
        return "\n".join(lines) + "\n"

    def write(self, directory: Path, stem: str, cases: Mapping[str, Case]) -> list[Path]:
        directory.mkdir(parents=True, exist_ok=True)
        document = asdict(self) | {
            "points": [asdict(p) for p in self.points()],
            "targets": [asdict(t) | {"verdict": t.verdict} for t in self.targets()],
        }
        written = [directory / f"{stem}.json", directory / f"{stem}.md"]
        written[0].write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n")
        written[1].write_text(self.markdown(cases))
        for plot in ("api", "oauth"):
            shown = [
                key
                for key, case in cases.items()
                if case.plot == plot and any(p.case == key for p in self.points())
            ]
            if shown:
                path = directory / f"{stem}-{plot}.png"
                self._plot(path, shown, cases)
                written.append(path)
        return written

    def _plot(self, path: Path, keys: list[str], cases: Mapping[str, Case]) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        figure, (throughput, tail) = plt.subplots(1, 2, figsize=(13, 5.5))
        for key in keys:
            points = sorted(
                (p for p in self.points() if p.case == key and not p.paced),
                key=lambda p: p.connections,
            )
            xs = [p.connections for p in points]
            label = f"({key}) {cases[key].title}"
            throughput.errorbar(
                xs,
                [p.rps_median for p in points],
                yerr=[
                    [p.rps_median - p.rps_min for p in points],
                    [p.rps_max - p.rps_median for p in points],
                ],
                marker="o",
                capsize=3,
                label=label,
            )
            tail.plot(xs, [p.p99_ms for p in points], marker="o", label=label)
        for axes, ylabel in (
            (throughput, "requests/s (median; bars: min–max; runs with errors left out)"),
            (tail, "p99 latency, ms (median)"),
        ):
            axes.set_xscale("log", base=2)
            axes.set_xticks(CONNECTIONS, [str(c) for c in CONNECTIONS])
            axes.set_yscale("log")
            axes.set_xlabel("connections")
            axes.set_ylabel(ylabel)
            axes.grid(True, which="both", alpha=0.3)
        throughput.legend(fontsize=7)
        figure.suptitle(f"openplatform bench {self.started} ({self.mode})")
        figure.tight_layout()
        figure.savefig(path, dpi=110)
        plt.close(figure)
