"""Benchmark report: markdown, a self-contained HTML page and a cactus plot.

The cactus plot (instances solved vs time, ours beside the reference tool's times) needs
matplotlib (``pip install "nlverify[report]"``); without it the reports say so and the
rest is written. A wrong answer is listed at the very top of both reports.
"""

from __future__ import annotations

import base64
import html
import io
import logging
from collections.abc import Sequence
from dataclasses import astuple, dataclass, fields
from pathlib import Path

from verifier.bench.scoring import SOLVED, Outcomes, Scored, Totals, outcomes, totals

__all__ = ["ReportFiles", "cactus_png", "markdown_report", "write_reports"]

log = logging.getLogger(__name__)

MIN_TIME = 1.0
"""VNN-COMP counts runtimes below 1 s as 1 s."""


@dataclass(frozen=True, slots=True)
class ReportFiles:
    """Paths written by :func:`write_reports` (``plot`` is None without matplotlib)."""

    markdown: Path
    html: Path
    plot: Path | None


def _solved_times(times: Sequence[float]) -> list[float]:
    return sorted(max(MIN_TIME, t) for t in times)


def cactus_png(scored: Sequence[Scored], title: str = "nlverify") -> bytes | None:
    """PNG bytes of the cactus plot, or None when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    ours = _solved_times([s.row.time for s in scored if s.verdict in SOLVED])
    ref = _solved_times([s.ref_time for s in scored if s.ref_score > 0 and s.ref_time is not None])
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=110)
    for label, times, style in (("nlverify", ours, "-o"), ("alpha-beta-CROWN (ref.)", ref, "--s")):
        ax.plot(
            times, range(1, len(times) + 1), style, markersize=3, label=f"{label}: {len(times)}"
        )
    ax.set_xscale("log")
    ax.set_xlabel("time per instance (s, log)")
    ax.set_ylabel("instances solved")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right")
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def _benchmark_totals(scored: Sequence[Scored]) -> list[Totals]:
    names = sorted({s.row.benchmark for s in scored})
    per = [totals([s for s in scored if s.row.benchmark == n], n) for n in names]
    return per + [totals(scored, "all")]


def _benchmark_outcomes(scored: Sequence[Scored]) -> list[Outcomes]:
    names = sorted({s.row.benchmark for s in scored})
    per = [outcomes([s for s in scored if s.row.benchmark == n], n) for n in names]
    return per + [outcomes(scored, "all")]


def _wrong_lines(scored: Sequence[Scored]) -> list[str]:
    heads = {"wrong": "WRONG ANSWER", "refutes": "EXPECTED ANSWER REFUTED BY A CHECKED WITNESS"}
    return [
        f"{heads[s.verdict]}: {s.row.benchmark} {s.row.onnx} {s.row.vnnlib}: answered "
        f"{s.row.result}, expected {s.expected or 'unknown'}"
        + (f" ({s.witness})" if s.witness else "")
        for s in scored
        if s.verdict in heads
    ]


def _markdown(head: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    """A markdown table: the header, the rule, one line per row."""
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return out


_TOTAL_HEAD = (
    "benchmark", "instances", "solved", "sat", "unsat", "wrong", "score", "ref. solved",
    "ref. score",
)  # fmt: skip


def _totals_table(rows: Sequence[Totals]) -> list[str]:
    return _markdown(_TOTAL_HEAD, [astuple(t) for t in rows])


_OUTCOME_HEAD = (
    "benchmark", "instances", "sat", "unsat", "unknown", "timeout", "other", "wrong",
    "total s", "ref. sat", "ref. unsat", "max overrun s",
)  # fmt: skip


_OUTCOME_FORMAT = {"seconds": "{:.0f}", "max_overrun": "{:.2f}"}


def _outcomes_table(rows: Sequence[Outcomes]) -> list[str]:
    names = [f.name for f in fields(Outcomes)]  # in the header's order
    cells = [[_OUTCOME_FORMAT.get(n, "{}").format(getattr(o, n)) for n in names] for o in rows]
    return _markdown(_OUTCOME_HEAD, cells)


def _instance_table(scored: Sequence[Scored]) -> list[str]:
    out = [
        "| benchmark | onnx | vnnlib | expected | result | verdict | score | time (s) "
        "| stop reason | ref. | ref. time (s) | timeout (s) | engine stop | domains |",
        "|" + "---|" * 14,
    ]
    for s in scored:
        ref_time = "" if s.ref_time is None else f"{s.ref_time:.2f}"
        timeout = "" if s.row.timeout is None else f"{s.row.timeout:g}"
        out.append(
            f"| {s.row.benchmark} | {s.row.onnx} | {s.row.vnnlib} | {s.expected} | "
            f"{s.row.result} | {s.verdict} | {s.score} | {s.row.time:.2f} | "
            f"{s.row.stop_reason} | {s.ref_result} | {ref_time} | {timeout} | "
            f"{s.row.engine_stop} | {s.row.domains} |"
        )
    return out


def markdown_report(scored: Sequence[Scored], plot_name: str | None, title: str) -> str:
    """The markdown report (wrong answers first, totals, answer counts, plot, instances)."""
    lines = [f"# {title}", ""]
    wrong = _wrong_lines(scored)
    if wrong:
        lines += ["**" + w + "**" for w in wrong] + [""]
    lines += ["## Totals (VNN-COMP 2023+ scoring: +10 correct, -150 wrong)", ""]
    lines += _totals_table(_benchmark_totals(scored)) + [""]
    lines += ["## Answers (ref.: the reference tool's answers on the same rows)", ""]
    lines += _outcomes_table(_benchmark_outcomes(scored)) + [""]
    if plot_name:
        lines += [f"![cactus plot]({plot_name})", ""]
    else:
        lines += ["(no cactus plot: matplotlib is not installed; `pip install nlverify[report]`)"]
        lines += [""]
    lines += ["## Instances", ""] + _instance_table(scored) + [""]
    return "\n".join(lines)


def _html_table(md_lines: Sequence[str]) -> str:
    head, _, *body = md_lines
    cells = [c.strip() for c in head.strip("|").split("|")]
    out = ["<table>", "<tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in cells) + "</tr>"]
    for line in body:
        row = [c.strip() for c in line.strip("|").split("|")]
        cls = ' class="wrong"' if "wrong" in row else ""
        out.append(f"<tr{cls}>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>")
    return "\n".join(out + ["</table>"])


def html_report(scored: Sequence[Scored], png: bytes | None, title: str) -> str:
    """A self-contained HTML page (the plot embedded as a data URI)."""
    wrong = "".join(f'<p class="alarm">{html.escape(w)}</p>' for w in _wrong_lines(scored))
    plot = (
        f'<img alt="cactus plot" src="data:image/png;base64,{base64.b64encode(png).decode()}">'
        if png
        else "<p>(no cactus plot: matplotlib is not installed)</p>"
    )
    style = (
        "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;font-size:13px}"
        "td,th{border:1px solid #bbb;padding:2px 6px}.alarm{color:#fff;background:#c00;"
        "padding:.5em;font-weight:bold}tr.wrong{background:#fcc}"
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{style}</style></head><body><h1>{html.escape(title)}</h1>{wrong}"
        f"<h2>Totals</h2>{_html_table(_totals_table(_benchmark_totals(scored)))}"
        f"<h2>Answers</h2>{_html_table(_outcomes_table(_benchmark_outcomes(scored)))}"
        f"<h2>Cactus plot</h2>{plot}<h2>Instances</h2>{_html_table(_instance_table(scored))}"
        "</body></html>"
    )


def write_reports(scored: Sequence[Scored], out_dir: Path, title: str) -> ReportFiles:
    """Write ``report.md``, ``report.html`` and ``cactus.png`` (when matplotlib exists)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    n_bench = len({s.row.benchmark for s in scored})
    png = cactus_png(scored, f"solved vs time: {n_bench} benchmark(s), {len(scored)} instances")
    plot = None
    if png is not None:
        plot = out_dir / "cactus.png"
        plot.write_bytes(png)
    md = out_dir / "report.md"
    md.write_text(markdown_report(scored, plot.name if plot else None, title))
    page = out_dir / "report.html"
    page.write_text(html_report(scored, png, title))
    return ReportFiles(md, page, plot)
