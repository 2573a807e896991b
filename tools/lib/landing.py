"""The site's landing page (``overview.html``): per machine, the headline table, plots, verdicts,
noise floors and where every number came from. Static HTML with inline SVG; no script, no CDN.

Every number printed from a result file sits in an element whose ``data-src`` names its origin
as JSON ``[[benchmark, params, commit], ...]`` and whose ``data-kind`` says how it was computed
from those values: ``value`` (the value itself; seconds shown as ms), ``ratio`` (first / second),
``peak-fraction`` (value / ``data-peak`` in %), ``qkvo-fraction`` (MiB / the q+k+v+out MiB of the
shape in the params). A reader can hover for the commit; a test can recompute every figure from
the result files alone.
"""
from __future__ import annotations

import datetime
import html
import json
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from tools.lib import headline as hl
from tools.lib.headline import Baseline, HeadlineRow, MachineResults, Measured, Shape
from tools.lib.landing_svg import COLOURS, PlotPoint, PlotSeries, line_plot
from tools.lib.peaks import PEAK_TFLOPS_16BIT, peak_tflops

__all__ = ["PAGE", "MachineSection", "asv_graph_url", "headline_badge", "load_sections", "machine_names",
           "render_landing"]

PAGE = "overview.html"


def machine_names(results_dir: Path) -> list[str]:
    """Machines with results: the folders of ``results_dir`` holding a machine.json."""
    return sorted(p.parent.name for p in Path(results_dir).glob("*/machine.json"))


def asv_graph_url(benchmark: str, machine: str, selection: dict[str, list[str]],
                  x_axis: str | None = None, commits: str | None = None,
                  view: dict[str, str] | None = None) -> str:
    """The asv site's URL of one benchmark graph with its parameters selected.

    asv's ``graphdisplay`` reads ``#<benchmark>?machine=<m>&p-<param>=<value>&...`` (values as in
    benchmarks.json: ``'bfloat16'`` with its quotes), ``x-axis=<param>`` to plot against a
    parameter instead of commits, ``commits=<a>-<b>`` to mark a range, and ``view`` settings such
    as ``y-axis-scale=log`` or ``x-axis-scale=even``; each part encoded the way JavaScript's
    ``encodeURIComponent`` does.
    """
    def enc(text: str) -> str:
        return quote(text, safe="-_.!~*'()")

    parts = [f"machine={enc(machine)}"]
    for name, chosen in selection.items():
        parts += [f"p-{enc(name)}={enc(value)}" for value in chosen]
    if x_axis:
        parts.append(f"x-axis={enc(x_axis)}")
    if commits:
        parts.append(f"commits={enc(commits)}")
    parts += [f"{enc(k)}={enc(v)}" for k, v in (view or {}).items()]
    return f"index.html#{benchmark}?" + "&".join(parts)


# ---------------------------------------------------------------------------------------------
# Formatting: one place, so the page and its tooltips agree

def _date(ms: int | None) -> str:
    if not ms:
        return "date unknown"
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:,.3f}"


def _ratio(value: float) -> str:
    return f"{value:.1f}x" if value >= 10 else f"{value:.2f}x"


def _src(*measured: Measured) -> str:
    return html.escape(json.dumps([[m.benchmark, list(m.params), m.commit] for m in measured]), quote=True)


def _title(m: Measured) -> str:
    return f"{m.benchmark}{tuple(m.params)} at {m.commit[:8]}, measured {_date(m.measured_at)}"


def _cell(text: str, kind: str, *measured: Measured, extra: str = "", newest: str | None = None) -> str:
    """A table cell carrying its origin; a superscript names the commit when it is not ``newest``."""
    note = ""
    if newest and measured and measured[-1].commit != newest:
        note = f' <sup class="at">at {measured[-1].commit[:8]}</sup>'
    title = html.escape("; ".join(_title(m) for m in measured), quote=True)
    return (f'<td class="num"><span class="figure" data-kind="{kind}" data-src="{_src(*measured)}"{extra} '
            f'title="{title}">{html.escape(text)}</span>{note}</td>')


NA = '<td class="num na">—</td>'


# ---------------------------------------------------------------------------------------------
# One machine

@dataclass
class MachineSection:
    """One machine's part of the page: its results and, where it has forward times, the newest
    such run, its headline shape, the fastest dense baseline there and the table's rows."""

    machine: MachineResults
    run: object = None
    shape: Shape | None = None
    baseline: Baseline | None = None
    rows: list[HeadlineRow] = field(default_factory=list)


def _facts(machine: MachineResults, run) -> str:
    f = machine.facts
    items = []
    if f.get("gpu"):
        items.append(("GPU", f"{f['gpu']} x{f.get('gpu_count', '1')}, {f.get('gpu_memory', '?')}, "
                             f"driver {f.get('gpu_driver', '?')}, CUDA {f.get('cuda', '?')}"))
    items.append(("CPU", f"{f.get('cpu', '?')}, {f.get('num_cpu', '?')} cores"))
    try:
        items.append(("RAM", f"{int(f['ram']) / 2 ** 30:.0f} GiB"))
    except (KeyError, ValueError, TypeError):
        pass
    items.append(("OS", f.get("os", "?")))
    items.append(("torch", f.get("torch", "?")))
    if run is not None:
        items.append(("asv environment", run.env_name))
    return "<dl class=\"facts\">" + "".join(
        f"<dt>{html.escape(k)}</dt><dd>{html.escape(str(v))}</dd>" for k, v in items) + "</dl>"


def _shape_text(shape: Shape) -> str:
    causal = "causal" if shape.causal == "True" else "not causal"
    return (f"batch {shape.batch}, {int(shape.seq_len):,} tokens, {shape.heads} heads x head_dim "
            f"{shape.head_dim}, {shape.dtype_name}, {causal}")


def _column_commit(measured: list[Measured | None], newest: str) -> tuple[str, str]:
    """(the commit a column's cells are compared with, a header note): a column measured at one
    other commit says so once in its header; a mixed column marks each cell from elsewhere."""
    commits = {m.commit for m in measured if m is not None}
    if len(commits) == 1 and newest not in commits:
        commit = commits.pop()
        return commit, f'<br><small class="at">at commit {commit[:8]}</small>'
    return newest, ""


def _noise_floors(machine: MachineResults, results_dir: Path) -> dict | None:
    """{(benchmark, params without asv's quotes): NoiseFloor} of ``machine``; None where no noise
    measurement exists (no module, or no noise file for the machine)."""
    try:
        from tools.lib.noise import load_noise_floors
    except ImportError:  # no noise measurement in this checkout
        return None
    floors = load_noise_floors(str(results_dir), machine.name)
    return {(b, tuple(str(p).strip("'") for p in params)): f for (b, params), f in floors.items()} or None


def _headline_table(section: MachineSection, floors: dict | None = None) -> str:
    m, shape, baseline = section.machine, section.shape, section.baseline
    newest = section.run.commit_hash
    peak = peak_tflops(m.facts.get("gpu"), shape.dtype_name)
    qkvo = hl.qkvo_mib(shape)
    rows = section.rows
    at_tflops, tflops_note = _column_commit([r.tflops for r in rows], newest)
    at_memory, memory_note = _column_commit([r.memory for r in rows], newest)
    at_largest, largest_note = _column_commit([r.largest for r in rows] + [r.peak_at_largest for r in rows],
                                              newest)
    memory_label = ("peak MiB (CUDA allocator, inputs included)" if m.is_gpu
                    else "RSS growth MiB (one forward; a lower bound)")
    peak_label = (f"% of peak ({peak:g} TFLOP/s)" if peak else
                  "% of peak (no peak known for this " + ("GPU and dtype)" if m.is_gpu else "CPU)"))
    vs = f"vs fastest dense ({html.escape(baseline.name)})" if baseline else "vs fastest dense (none measured)"
    floor_head = ["noise floor (smallest detectable change)"] if floors else []
    head = ["implementation", "forward ms", *floor_head, vs, "effective TFLOP/s" + tflops_note, peak_label + tflops_note,
            memory_label + memory_note, (f"÷ q+k+v+out ({qkvo:g} MiB)" if qkvo else "÷ q+k+v+out") + memory_note,
            "largest fit (tokens)" + largest_note, "peak ÷ q+k+v+out at largest" + largest_note]
    lines = ['<table class="headline"><thead><tr>' + "".join(f"<th>{h}</th>" for h in head) +
             "</tr></thead><tbody>"]
    for row in rows:
        cells = [f'<td class="impl">{html.escape(row.implementation)}</td>',
                 _cell(_ms(row.time.value), "value", row.time, newest=newest)]
        if floors:
            floor = floors.get((row.time.benchmark, tuple(p.strip("'") for p in row.time.params)))
            mde = _figure_or_dash(None if floor is None else 100 * floor.mde, ".1f")
            shown = "±" + mde + "%" if mde != "—" else mde
            if floor is not None and not floor.stable:
                shown += " (unstable)"
            cells.append(f'<td class="num noise-floor">{shown}</td>')
        cells.append(_cell(_ratio(row.ratio), "ratio", baseline.time, row.time, newest=newest)
                     if row.ratio is not None else NA)
        if row.tflops:
            cells.append(_cell(f"{row.tflops.value:,.1f}", "value", row.tflops, newest=at_tflops))
            cells.append(_cell(f"{100 * row.tflops.value / peak:.1f}%", "peak-fraction", row.tflops,
                               extra=f' data-peak="{peak}"', newest=at_tflops) if peak
                         else '<td class="num na">no peak known</td>')
        else:
            cells += [NA, NA]
        if row.memory:
            cells.append(_cell(f"{row.memory.value:,.1f}", "value", row.memory, newest=at_memory))
            cells.append(_cell(f"{row.memory.value / qkvo:.2f}x", "qkvo-fraction", row.memory, newest=at_memory)
                         if qkvo else NA)
        else:
            cells += [NA, NA]
        cells.append(_cell(f"{int(row.largest.value):,}", "value", row.largest, newest=at_largest)
                     if row.largest else NA)
        cells.append(_cell(f"{row.peak_at_largest.value:.3f}x", "value", row.peak_at_largest, newest=at_largest)
                     if row.peak_at_largest else NA)
        lines.append("<tr>" + "".join(cells) + "</tr>")
    lines.append("</tbody></table>")
    return "\n".join(lines)


def _selection(shape: Shape, implementations: list[str]) -> dict[str, list[str]]:
    return {"implementation": [repr(n) for n in implementations], "batch": [shape.batch],
            "heads": [shape.heads], "head_dim": [shape.head_dim], "dtype": [shape.dtype],
            "causal": [shape.causal]}


def _asv_shows(run, key: str, benchmarks: dict) -> bool:
    """Whether asv's site shows ``run``'s results of ``key``: asv leaves out results measured by
    other benchmark code (another version) than benchmarks.json defines."""
    version = (run.benchmark_version or {}).get(key)
    return version is None or version == (benchmarks.get(key) or {}).get("version")


def _figure(svg: str, url: str, caption: str, runs: list, benchmarks: dict) -> str:
    """The plot linked to asv's graph at ``url``, unless asv's site shows none of ``runs`` (the
    commits plotted): then the caption says why there is no link."""
    hidden = [r for r in runs if not _asv_shows(r, hl.FORWARD, benchmarks)]
    why = ("measured by other benchmark code than the site's benchmarks.json defines (asv shows only "
           "results of the benchmark version it lists; run every machine on the same benchmark code)")
    if len(hidden) == len(runs):
        return (f'<figure>{svg}<figcaption>{caption} <span class="no-link">asv\'s site does not show '
                f'these results: {why}.</span></figcaption></figure>')
    note = (f' <span class="partial">asv\'s graph leaves out {len(hidden)} of these {len(runs)} commits, '
            f"{why}.</span>") if hidden else ""
    return (f'<figure><a class="plot-link" href="{html.escape(url, quote=True)}" '
            f'title="open this graph in asv">{svg}</a><figcaption>{caption} '
            f'<a href="{html.escape(url, quote=True)}">asv graph</a>{note}</figcaption></figure>')


def _point(x: float, y: float, tooltip: str, shown: str, kind: str, *measured: Measured) -> PlotPoint:
    return PlotPoint(x, y, tooltip, shown, {"data-kind": kind, "data-src": json.dumps(
        [[m.benchmark, list(m.params), m.commit] for m in measured])})


def _time_point(name: str, m: Measured) -> PlotPoint:
    seq_len = int(m.params[1])
    return _point(seq_len, m.value * 1e3, f"{name}, {seq_len:,} tokens: {_ms(m.value)} ms at {m.commit[:8]}",
                  _ms(m.value), "value", m)


BASELINE_COLOURS = ("#555555", "#bcbd22", "#17becf", "#999999")


def _colours(section: MachineSection) -> dict[str, str]:
    """One colour per implementation, the same in every plot of a machine (table order)."""
    return {row.implementation: COLOURS[i % 8] for i, row in enumerate(section.rows)}


def _seq_len_plot(section: MachineSection, benchmarks: dict) -> str:
    m, run, shape = section.machine, section.run, section.shape
    forward = hl.forward_by_seq_len(run, shape)
    dense = hl.dense_by_seq_len(run, shape, m.is_gpu)
    colour = _colours(section)
    series = [PlotSeries(name, [_time_point(name, p) for p in points], colour=colour.get(name))
              for name, points in sorted(forward.items(), key=lambda kv: kv[1][-1].value)]
    series += [PlotSeries(f"{name} (dense baseline)", [_time_point(name, p) for p in points], dashed=True,
                          colour=BASELINE_COLOURS[i % len(BASELINE_COLOURS)])
               for i, (name, points) in enumerate(dense.items())]
    seq_lens = sorted({int(p.x) for s in series for p in s.points})
    svg = line_plot(series, x_label="sequence length (tokens, log)", y_label="forward time (ms, log)",
                    x_log=True, y_log=True,
                    x_ticks=[(s, f"{s // 1024}K" if s % 1024 == 0 else str(s)) for s in seq_lens],
                    description=f"{m.name}: forward time against sequence length at commit {run.commit_hash[:8]}")
    url = asv_graph_url(hl.FORWARD, m.name, _selection(shape, sorted(forward)), x_axis="seq_len",
                        view={"y-axis-scale": "log"})
    causal = "causal" if shape.causal == "True" else "not causal"
    return _figure(svg, url, f"Forward time against sequence length, log-log ({shape.dtype_name}, {causal}, "
                             f"commit {run.commit_hash[:8]}; dashed: SDPA backends).", [run], benchmarks)


def _history_plot(section: MachineSection, benchmarks: dict) -> str:
    m, shape = section.machine, section.shape
    history = hl.ratio_history(m, shape)
    if not history:
        return ('<figure><p class="absent">No speed-up history: no commit measured a dense kernel at '
                'this shape.</p></figure>')
    measured = {p.commit for points in history.values() for p in points}
    commits = list(dict.fromkeys(r.commit_hash for r in m.runs if r.commit_hash in measured))
    position = {c: i for i, c in enumerate(commits)}
    series = [PlotSeries(name, [_point(
        position[p.commit], p.ratio,
        f"{name} at {p.commit[:8]}: {_ratio(p.ratio)} ({p.baseline.name} {_ms(p.baseline.time.value)} ms "
        f"/ {_ms(p.time.value)} ms)", _ratio(p.ratio), "ratio", p.baseline.time, p.time) for p in points],
        colour=_colours(section).get(name))
        for name, points in sorted(history.items(), key=lambda kv: -kv[1][-1].ratio)]
    svg = line_plot(series, x_label="commit (oldest left)", y_label="speed-up vs fastest dense (x)",
                    x_ticks=[(i, c[:8]) for i, c in enumerate(commits)], rotate_x_labels=True,
                    y_from_zero=True, reference_y=(1.0, "fastest dense"),
                    description=f"{m.name}: headline ratio against the fastest dense kernel, per commit")
    url = asv_graph_url(hl.FORWARD, m.name, {**_selection(shape, sorted(history)), "seq_len": [shape.seq_len]},
                        view={"x-axis-scale": "even"})
    return _figure(svg, url, f"Speed-up against the fastest dense kernel measured at the same commit, "
                             f"{int(shape.seq_len):,} tokens, per commit (asv's graph shows the times).",
                   [r for r in m.runs if r.commit_hash in measured], benchmarks)


def _asv_params(benchmark: str, params: tuple[str, ...], benchmarks: dict) -> dict[str, list[str]]:
    """{param name: [value as benchmarks.json spells it]} for one parameter tuple, whether its values
    come quoted like asv's (``'bfloat16'``) or bare like the series labels (``bfloat16``)."""
    definition = benchmarks.get(benchmark) or {}
    selection = {}
    for name, value, known in zip(definition.get("param_names") or [], params, definition.get("params") or []):
        spelled = next((k for k in known if k == value or k.strip("'") == str(value).strip("'")), value)
        selection[name] = [spelled]
    return selection


def _figure_or_dash(value: float | None, fmt: str) -> str:
    return "—" if value is None or value != value else format(value, fmt)


def _all_verdicts(results_dir: Path, verdicts: list | None = None) -> dict[str, list] | None:
    """{machine: its confirmed and candidate regressions} from ``verdicts`` (default: every machine
    judged here in one pass); None where this checkout has no detector."""
    if verdicts is None:
        try:
            from tools.lib.verdicts import verdicts_for
        except ImportError:  # no detector in this checkout: nothing has been judged
            return None
        verdicts = verdicts_for(str(results_dir))
    found: dict[str, list] = {}
    for v in verdicts:
        if v.status in ("confirmed", "candidate"):
            found.setdefault(v.machine, []).append(v)
    return found


def _verdicts(machine: MachineResults, verdicts: dict[str, list] | None, benchmarks: dict) -> str:
    if verdicts is None:
        return '<p class="absent">No verdicts yet: the regression detector has not judged these results.</p>'
    found = verdicts.get(machine.name, [])
    if not found:
        return '<p class="none">The detector found no confirmed or candidate regression on this machine.</p>'
    rows = []
    for v in sorted(found, key=lambda v: (v.status != "confirmed", -v.factor, v.benchmark, v.params)):
        commits = f"{v.parent[:8]}-{v.commit[:8]}" if v.parent else v.commit[:8]
        url = asv_graph_url(v.benchmark, machine.name, _asv_params(v.benchmark, v.params, benchmarks),
                            commits=commits)
        floor = _figure_or_dash(None if v.noise_floor is None else 100 * v.noise_floor, ".1f")
        rows.append(f'<tr class="{html.escape(v.status)}"><td>{html.escape(v.status)}</td>'
                    f'<td><a href="{html.escape(url, quote=True)}">{html.escape(v.benchmark)}</a></td>'
                    f'<td>{html.escape(", ".join(str(p) for p in v.params))}</td>'
                    f'<td><code>{html.escape((v.parent or "?")[:8])}</code> → <code>{html.escape(v.commit[:8])}</code></td>'
                    f'<td class="num">{v.factor:.2f}x</td><td class="num">{_figure_or_dash(v.p_value, ".2g")}</td>'
                    f'<td class="num">{floor}{"%" if floor != "—" else ""}</td></tr>')
    return ('<table class="verdicts"><thead><tr><th>status</th><th>benchmark (opens asv, step marked)</th>'
            '<th>params</th><th>last good → first bad</th><th>factor (worse by)</th><th>p-value</th>'
            '<th>noise floor (smallest detectable change)</th></tr></thead><tbody>'
            + "".join(rows) + "</tbody></table>")


def _noise(machine: MachineResults, results_dir: Path) -> str:
    floors = _noise_floors(machine, results_dir)
    if not floors:
        return '<p class="absent">No noise floor measured on this machine.</p>'
    rows = []
    for (benchmark, params), f in sorted(floors.items()):
        cells = [_figure_or_dash(100 * x, ".2f") for x in (f.within_cv, f.between_cv)]
        mde = _figure_or_dash(100 * f.mde, ".1f")
        rows.append(f"<tr><td>{html.escape(benchmark)}</td><td>{html.escape(', '.join(map(str, params)))}</td>"
                    + "".join(f'<td class="num">{c}{"%" if c != "—" else ""}</td>' for c in cells)
                    + f'<td class="num">{mde}{"%" if mde != "—" else ""}</td><td>{"yes" if f.stable else "no"}</td>'
                    f'<td class="num">{f.runs}</td></tr>')
    return (f"<details><summary>{len(rows)} parameter sets measured (runs of the same commit)</summary>"
            '<table class="noise"><thead><tr><th>benchmark</th><th>params</th><th>within-run CV</th>'
            '<th>between-run CV</th><th>smallest detectable change</th><th>stable</th><th>runs</th></tr>'
            '</thead><tbody>' + "".join(rows) + "</tbody></table></details>")


def _machine_section(section: MachineSection, results_dir: Path, benchmarks: dict,
                     verdicts: dict[str, list] | None) -> str:
    m = section.machine
    parts = [f'<section class="machine" id="machine-{html.escape(m.name)}">',
             f"<h2>{html.escape(m.name)}</h2>", _facts(m, section.run)]
    if section.run is None:
        parts.append('<p class="absent">No forward times measured on this machine yet.</p>')
    else:
        run, shape, baseline = section.run, section.shape, section.baseline
        base_text = (f"fastest dense kernel: <b>{html.escape(baseline.name)}</b>, "
                     f"{_ms(baseline.time.value)} ms" if baseline else "no dense kernel measured at this shape")
        parts.append(f'<p class="where">Headline shape: {_shape_text(shape)}. Forward times at commit '
                     f'<code class="commit">{run.commit_hash[:8]}</code> (committed {_date(run.date)}; measured '
                     f'{_date((run.started_at or {}).get(hl.FORWARD))}); {base_text}. Figures from another '
                     f"commit say so; hover a figure for its benchmark, parameters and date.</p>")
        parts.append(_headline_table(section, _noise_floors(m, results_dir)))
        parts.append('<div class="plots">' + _seq_len_plot(section, benchmarks) + _history_plot(section, benchmarks) + "</div>")
    parts += ["<h3>Regression verdicts</h3>", _verdicts(m, verdicts, benchmarks),
              "<h3>Noise floors</h3>", _noise(m, results_dir), "</section>"]
    return "\n".join(parts)


STYLE = """
body { font-family: system-ui, sans-serif; margin: 0 2em 2em; color: #222222; max-width: 1600px; }
nav { padding: .6em 0; border-bottom: 1px solid #ddd; margin-bottom: 1em; }
nav a { margin-right: 1.2em; }
table { border-collapse: collapse; margin: .5em 0 1em; font-size: 14px; }
th, td { border: 1px solid #ddd; padding: 3px 8px; }
th { background: #f4f4f4; font-weight: 600; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.na { color: #999999; }
.at { color: #777777; font-size: 10px; font-weight: normal; }
dl.facts { display: grid; grid-template-columns: max-content auto; gap: 0 1em; font-size: 14px; }
dl.facts dt { color: #666666; } dl.facts dd { margin: 0; }
.plots { display: flex; flex-wrap: wrap; gap: 1em; }
figure { margin: 0; width: 690px; } figcaption { font-size: 13px; }
.absent { color: #666666; font-style: italic; }
tr.confirmed td:first-child { color: #b00; font-weight: 600; }
section.machine { border-top: 2px solid #ccc; margin-top: 1.5em; }
"""


def load_sections(results_dir: Path, order: dict[str, int] | None = None) -> list[MachineSection]:
    """Every machine under ``results_dir`` with its headline figures, GPUs first; a ToolError names
    an unreadable machine.json."""
    machines = [hl.load_machine(results_dir, name, order) for name in machine_names(results_dir)]
    return [MachineSection(m, *hl.headline_rows(m)) for m in sorted(machines, key=lambda m: (not m.is_gpu, m.name))]


def headline_badge(sections: list[MachineSection]) -> tuple[str, str] | None:
    """(label, value) of the page's first headline: the fastest implementation's speed-up on the
    first machine with one, e.g. ("h100-80gb-hbm3x1 32K forward", "20.3x vs fastest dense")."""
    for s in sections:
        best = next((r for r in s.rows if r.ratio is not None), None)
        if best:
            tokens = int(s.shape.seq_len)
            size = f"{tokens // 1024}K" if tokens % 1024 == 0 else f"{tokens:,}"
            return (f"{s.machine.name} {size} forward",
                    f"{best.implementation} {_ratio(best.ratio)} vs fastest dense")
    return None


def render_landing(results_dir: Path, order: dict[str, int] | None = None,
                   sections: list[MachineSection] | None = None, verdicts: list | None = None) -> str:
    """The whole landing page as HTML text, from ``results_dir`` (machine folders, benchmarks.json)
    or the ``sections`` and ``verdicts`` (``tools.lib.verdicts.verdicts_for``) already read from it."""
    results_dir = Path(results_dir)
    benchmarks = {}
    if (results_dir / "benchmarks.json").is_file():
        benchmarks = json.loads((results_dir / "benchmarks.json").read_text())
    if sections is None:
        sections = load_sections(results_dir, order)
    summary = []
    for s in sections:
        if not s.rows:
            what = "no forward times yet"
        else:  # rows are fastest first
            best = s.rows[0]
            what = f"fastest: {html.escape(best.implementation)}, {_ms(best.time.value)} ms, " + (
                f"{_ratio(best.ratio)} vs {html.escape(s.baseline.name)}" if best.ratio is not None
                else "no dense kernel measured at this shape")
        summary.append(f'<li><a href="#machine-{html.escape(s.machine.name)}">{html.escape(s.machine.name)}</a>: '
                       f'{html.escape(s.machine.facts.get("gpu") or s.machine.facts.get("cpu", "?"))}; {what}</li>')
    peaks = ", ".join(f"{name} {tflops:g}" for name, tflops in PEAK_TFLOPS_16BIT)
    by_machine = _all_verdicts(results_dir, verdicts)
    body = "\n".join(_machine_section(s, results_dir, benchmarks, by_machine) for s in sections)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>attnbench: results overview</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>{STYLE}</style></head>
<body>
<nav><b>attnbench</b> <a href="{PAGE}">Overview</a><a href="index.html#/">Benchmark grid</a>
<a href="index.html#/summarylist">Benchmark list</a><a href="index.html#/regressions">Regressions</a></nav>
<h1>Long-sequence attention: results overview</h1>
<p>Each machine's newest results: forward time of every implementation at the machine's headline
shape, its speed-up against the fastest dense kernel measured on the same machine at the same commit
(the honest baseline), effective TFLOP/s against the hardware's peak, memory against the q, k, v and
output tensors, and the longest sequence that fits. Every plot opens the matching asv graph.</p>
<ul class="machines">{''.join(summary)}</ul>
{body}
<footer><h3>Definitions</h3><p>Speed-up: the fastest dense kernel's time (DenseAttention with torch's
own SDPA choice, or an SDPA backend forced by bench_sdpa: flash or cuDNN on a GPU, any backend on a CPU)
divided by the implementation's time. Effective TFLOP/s: FLOPs of the query-key pairs the
implementation attends (4 x batch x head_dim per pair) per second. Peak: dense bf16/fp16 tensor-core
TFLOP/s from the vendors' datasheets ({peaks}); float32 and CPUs have none here. q+k+v+out: 4 x batch x
seq_len x heads x head_dim x bytes per element.</p></footer>
</body></html>
"""
