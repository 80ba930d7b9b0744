"""What the suite writes: one experiment's ``result.md`` and the suite's ``REPORT.md`` (a
scoreboard of every claim, then one section per experiment with its figures copied beside it)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

# The order of the groups in ../shared/EXPERIMENTS.md (for listings and the report).
GROUP_ORDER = "OAIRLPHMUV"


def sort_key(exp_id: str) -> tuple:
    m = re.match(r"([A-Za-z]+)(\d+)", exp_id)
    if not m:
        return (len(GROUP_ORDER), exp_id, 0)
    group, num = m.group(1).upper(), int(m.group(2))
    return (GROUP_ORDER.index(group) if group in GROUP_ORDER else len(GROUP_ORDER), group, num)


def verdict_word(verdict: bool | None, status: str = "ok") -> str:
    if status != "ok":
        return "ERRORED"
    return {True: "HELD", False: "DID NOT HOLD", None: "INCONCLUSIVE"}[verdict]


def duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


def result_markdown(record: dict, out_dir: Path, figure_prefix: str = "") -> str:
    """The markdown of one experiment's result (also one section of the report)."""
    lines = [f"# {record['id']}: {record.get('title', '')}", ""]
    if record.get("claim"):
        lines += [f"**Claim.** {record['claim']}", ""]
    if record.get("reference"):
        lines += [f"**Reference.** {record['reference']}", ""]
    word = verdict_word(record.get("verdict"), record.get("status", "ok"))
    lines += [f"**Verdict: {word}.** {record.get('verdict_text', '')}", ""]
    if record.get("table_md"):
        lines += ["## Ours beside the reference", "", record["table_md"], ""]
    if record.get("notes"):
        lines += [record["notes"], ""]
    figs = record.get("figures") or []
    if figs:
        lines += ["## Figures", ""]
        for f in figs:
            p = Path(f)
            if not p.is_absolute():
                rel = figure_prefix + str(p)
            elif p.parent == Path(out_dir).resolve():
                rel = figure_prefix + p.name
            else:
                rel = str(p)
            lines += [f"![{p.stem}]({rel})", ""]
    if record.get("status") == "error":
        lines += ["## Error", "", "```", record.get("traceback", record.get("error", "")).rstrip(), "```", ""]
    seeds = record.get("seeds", [])
    lines += ["## Cost and reproduction", "",
              f"- budget `{record['budget']}`, seeds {seeds}, device `{record.get('device')}`",
              f"- wall time {duration(record['wall_time_s'])} ({record.get('runs', 0)} training runs, "
              f"{duration(record.get('train_time_s', 0.0))} in training); finished {record.get('finished', '')}, "
              f"code {record.get('git', '')}",
              f"- reproduce: `{record['command']}`", ""]
    return "\n".join(lines)


def write_report(out: Path, budget: str, report_dir: Path, claims: dict[str, str] | None = None,
                 command: str | None = None) -> Path:
    """``report_dir/REPORT.md``: the scoreboard of every experiment's latest result under
    ``out/<budget>/`` (and the known experiments not yet run: ``claims``, ``{ID: claim}``), then
    each result with its figures, which are copied into ``report_dir/figures/``."""
    claims = claims or {}
    base = Path(out) / budget
    records = {}
    for f in sorted(base.glob("*/result.json")) if base.is_dir() else []:
        try:
            rec = json.loads(f.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        records[rec["id"]] = rec
    ids = sorted(set(records) | set(claims), key=sort_key)
    report_dir = Path(report_dir)
    fig_dir = report_dir / "figures"
    if fig_dir.exists():
        shutil.rmtree(fig_dir)
    fig_dir.mkdir(parents=True)
    held = sum(1 for r in records.values() if r.get("status") == "ok" and r.get("verdict") is True)
    failed = sum(1 for r in records.values() if r.get("status") == "ok" and r.get("verdict") is False)
    errored = sum(1 for r in records.values() if r.get("status") != "ok")
    total_s = sum(r.get("wall_time_s", 0.0) for r in records.values())
    lines = [f"# nnbasics experiment report (budget `{budget}`)", "",
             f"{len(records)} of {len(ids)} experiments have results: {held} held, {failed} did not hold, "
             f"{len(records) - held - failed - errored} inconclusive, {errored} errored; "
             f"{duration(total_s)} of wall time in all.", ""]
    if command:
        lines += [f"Made by: `{command}`", ""]
    lines += ["## Scoreboard", "", "| id | claim | held? | key numbers | cost |", "|---|---|---|---|---|"]
    for i in ids:
        r = records.get(i)
        if r is None:
            claim = str(claims.get(i, "")).replace("|", "\\|")
            lines.append(f"| {i} | {claim} | not run | - | - |")
            continue
        claim = (r.get("claim") or r.get("title") or "").replace("|", "\\|").replace("\n", " ")
        key = (r.get("summary") or r.get("error", "") if r.get("status") != "ok" else r.get("summary", "")) or ""
        lines.append(f"| [{i}](#{i.lower()}) | {claim} | {verdict_word(r.get('verdict'), r.get('status', 'ok'))} "
                     f"| {key.replace('|', '/')} | {duration(r.get('wall_time_s', 0.0))} |")
    lines.append("")
    for i in ids:
        r = records.get(i)
        if r is None:
            continue
        figs = []
        for f in r.get("figures") or []:
            src = Path(f)
            if src.exists():
                dst = fig_dir / f"{i}_{src.name}"
                shutil.copyfile(src, dst)
                figs.append(str(dst.relative_to(report_dir)))
        section = result_markdown({**r, "figures": figs}, report_dir)
        section = section.replace(f"# {i}:", f'<a id="{i.lower()}"></a>\n\n## {i}:', 1)
        section = re.sub(r"^## (Ours beside|Figures|Error|Cost)", r"### \1", section, flags=re.M)
        lines += ["---", "", section]
    path = report_dir / "REPORT.md"
    path.write_text("\n".join(lines))
    return path
