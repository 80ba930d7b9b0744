"""What the suite writes: one experiment's ``result.md`` and the suite's ``REPORT.md`` (a
scoreboard of every claim, then one section per experiment with its figures copied beside it)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Sequence

# The order of the groups in ../shared/EXPERIMENTS.md (for listings and the report).
GROUP_ORDER = "OAIRLPHMUV"


def sort_key(exp_id: str) -> tuple:
    m = re.match(r"([A-Za-z]+)(\d+)", exp_id)
    if not m:
        return (len(GROUP_ORDER), exp_id, 0)
    group, num = m.group(1).upper(), int(m.group(2))
    return (GROUP_ORDER.index(group) if group in GROUP_ORDER else len(GROUP_ORDER), group, num)


SMOKE_WORD = "smoke: runs only"
"""What stands in place of a verdict at budget=smoke: toy data decides no claim."""


def command_line(ids: Sequence[str], budget: str, seeds: Sequence[int], device: str, threads: int | None = None,
                 data: str | None = None, population: bool = True) -> str:
    """The ``nnbasics-experiment`` line that reproduces a run: every option that changes what runs
    (``threads`` and ``data`` when set, ``population=false`` when the sequential path ran)."""
    seeds = list(seeds)
    seed_arg = f"seeds={len(seeds)}" if seeds == list(range(len(seeds))) else "seeds=" + ",".join(map(str, seeds))
    line = f"nnbasics-experiment {' '.join(ids)} budget={budget} {seed_arg} device={device}"
    if threads:
        line += f" threads={int(threads)}"
    if data:
        line += f" data={data}"
    if not population:
        line += " population=false"
    return line


def verdict_word(verdict: bool | None, status: str = "ok", budget: str | None = None) -> str:
    if status != "ok":
        return "ERRORED"
    if budget == "smoke":
        return SMOKE_WORD
    return {True: "HELD", False: "DID NOT HOLD", None: "INCONCLUSIVE"}[verdict]


def result_folders(out: Path, budget: str, exp_id: str) -> list[Path]:
    """The complete result folders of ``exp_id`` under ``out/<budget>/<ID>/`` (those holding a
    ``result.json``), oldest first: one ``<YYYYmmdd-HHMMSS>_<6-hex>/`` folder per run of the
    experiment (and the ID folder itself for a result written before runs had their own)."""
    base = Path(out) / budget / exp_id
    found = [f.parent for f in base.glob("*/result.json")]
    if (base / "result.json").exists():
        found.append(base)
    # the start stamp in the name, then (runs started in the same second) the time result.json was written
    return sorted(found, key=lambda d: (d != base, d.name.split("_")[0], (d / "result.json").stat().st_mtime_ns))


def latest_results(out: Path, budget: str) -> dict[str, tuple[dict, Path]]:
    """``{ID: (record, folder)}``: the latest complete result of every experiment under
    ``out/<budget>/`` (a folder whose ``result.json`` does not read is passed over)."""
    base = Path(out) / budget
    latest: dict[str, tuple[dict, Path]] = {}
    for exp_dir in sorted(base.iterdir()) if base.is_dir() else []:
        if not exp_dir.is_dir():
            continue
        for folder in reversed(result_folders(out, budget, exp_dir.name)):
            try:
                rec = json.loads((folder / "result.json").read_text())
            except (OSError, json.JSONDecodeError):
                continue
            latest[str(rec.get("id", exp_dir.name))] = (rec, folder)
            break
    return latest


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
    if record.get("protocol"):
        where = ("this budget runs it" if record.get("at_protocol") else
                 f"budget `{record.get('budget')}` is below it" + (f": {record['scale_down']}" if record.get("scale_down") else ""))
        lines += [f"**Protocol.** {record['protocol']} ({where})", ""]
    word = verdict_word(record.get("verdict"), record.get("status", "ok"), record.get("budget"))
    lines += [f"**Verdict: {word}.** {record.get('verdict_text', '')}", ""]
    if record.get("differs") and record.get("verdict") is not True and record.get("budget") != "smoke":
        lines += [f"**Why ours may differ.** {record['differs']}", ""]
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
              f"- reproduce: `{record['command']}`"]
    if record.get("result_dir"):
        lines.append(f"- result folder: `{record['result_dir']}`")
    lines.append("")
    return "\n".join(lines)


def provenance(records: dict[str, dict], known: set[str] | None = None) -> list[str]:
    """The report's provenance lines: the code revision(s) the results ran (one clean commit, or
    each revision with its experiments, ``-dirty`` ones flagged), the machine(s), the data folder(s),
    the one command that runs them all again (``all``, or the ids that have results when ``known``
    experiments are missing) and how the runs were grouped."""
    def grouped(key: str) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for i in sorted(records, key=sort_key):
            out.setdefault(str(records[i].get(key) or "not recorded"), []).append(i)
        return out

    revs, machines, data = grouped("git"), grouped("machine"), grouped("data")
    lines = []
    if len(revs) == 1:
        rev = next(iter(revs))
        lines.append(f"- code: every result ran at `{rev}`" + (" (a tree with uncommitted changes)" if rev.endswith("-dirty") else ""))
    else:
        lines.append("- code: **results from several revisions**: " + "; ".join(
            f"`{r}`{' (uncommitted changes)' if r.endswith('-dirty') else ''}: {', '.join(ids)}" for r, ids in revs.items()))
    lines.append("- machine: " + "; ".join(m if len(machines) == 1 else f"{m}: {', '.join(ids)}" for m, ids in machines.items()))
    lines.append("- data: " + "; ".join(d if len(data) == 1 else f"{d}: {', '.join(ids)}" for d, ids in data.items()))
    runs = {(tuple(r.get("seeds") or ()), r.get("device"), r.get("threads"), r.get("data"), r.get("population", True))
            for r in records.values()}
    if len(runs) == 1 and records:
        seeds, device, threads, data_dir, population = next(iter(runs))
        budget = next(iter(records.values())).get("budget", "default")
        partial = bool(known and not known <= set(records))
        which = sorted(records, key=sort_key) if partial else ["all"]
        lines.append(f"- {'these experiments' if partial else 'every experiment'} again: "
                     f"`{command_line(which, budget, seeds, device, threads, data_dir, population)}`"
                     + f" (then `nnbasics-experiment report budget={budget}`)")
    pops = [i for i, r in records.items() if r.get("population") is False]
    lines.append("- runs grouped as populations where the engine can" + (f", except {', '.join(sorted(pops, key=sort_key))} (population=false)" if pops else ""))
    return lines + [""]


def write_report(out: Path, budget: str, report_dir: Path, claims: dict[str, str] | None = None,
                 command: str | None = None) -> Path:
    """``report_dir/REPORT.md``: the scoreboard of every experiment's latest complete result under
    ``out/<budget>/<ID>/<run folder>/`` (each section names its folder; and the known experiments not yet run: ``claims``, ``{ID: claim}``), then
    each result with its figures, which are copied into ``report_dir/figures/``."""
    claims = claims or {}
    latest = latest_results(out, budget)
    records = {i: {**rec, "result_dir": str(folder)} for i, (rec, folder) in latest.items()}
    ids = sorted(set(records) | set(claims), key=sort_key)
    report_dir = Path(report_dir)
    fig_dir = report_dir / "figures"
    if fig_dir.exists():
        shutil.rmtree(fig_dir)
    fig_dir.mkdir(parents=True)
    words = [verdict_word(r.get("verdict"), r.get("status", "ok"), budget) for r in records.values()]
    total_s = sum(r.get("wall_time_s", 0.0) for r in records.values())
    if budget == "smoke":
        counts = (f"{words.count(SMOKE_WORD)} ran ({SMOKE_WORD}: toy data, no verdicts), "
                  f"{words.count('ERRORED')} errored")
    else:
        counts = (f"{words.count('HELD')} HELD, {words.count('DID NOT HOLD')} DID NOT HOLD, "
                  f"{words.count('INCONCLUSIVE')} INCONCLUSIVE, {words.count('ERRORED')} ERRORED")
    lines = [f"# nnbasics experiment report (budget `{budget}`)", "",
             f"{len(records)} of {len(ids)} experiments have results: {counts}; "
             f"{duration(total_s)} of wall time in all.", ""]
    lines += provenance(records, set(ids))
    if budget == "smoke":
        lines += [f"**{SMOKE_WORD}.** The smoke budget runs every experiment on toy data for seconds to check "
                  "that it runs; it decides no claim.", ""]
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
        lines.append(f"| [{i}](#{i.lower()}) | {claim} | {verdict_word(r.get('verdict'), r.get('status', 'ok'), budget)} "
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
