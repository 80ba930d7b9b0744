"""``nnbasics-experiment``: run experiments of the suite and write the report.

Command line (``key=value`` arguments, like the training command)::

    nnbasics-experiment I3                     # one experiment, default budget, 3 seeds
    nnbasics-experiment O1 O3 budget=smoke seeds=2
    nnbasics-experiment all budget=default     # the whole suite, then the report
    nnbasics-experiment list                   # the experiments found, with their claims
    nnbasics-experiment report budget=default  # rebuild REPORT.md from the results on disk

Every run of an experiment writes a new folder ``out/<budget>/<ID>/<YYYYmmdd-HHMMSS>_<6-hex>/``;
nothing earlier is removed, and the report reads each experiment's latest complete one. At
``budget=smoke`` there are no verdicts ("smoke: runs only").
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any, Sequence

from nnbasics.suite.context import BUDGETS, DEFAULT_SEEDS, ExperimentError
from nnbasics.suite.report import duration, verdict_word, write_report
from nnbasics.suite.runner import claims_of, discover, experiments_dir, load_module, run_experiment


USAGE = """usage: nnbasics-experiment ID [ID ...] | all | list | report  [key=value ...]

  budget=smoke|default|full   data and scale (default: default)
  seeds=N | seeds=a,b,c       N seeds 0..N-1, or the seeds listed (default: 3)
  device=auto|cpu|cuda        where training runs (default: auto)
  threads=N                   torch CPU threads (default: torch's; 1 at smoke)
  out=PATH                    each run goes to a new PATH/<budget>/<ID>/<time>_<hex>/ (default: outputs/experiments)
  report=PATH                 the report goes to PATH/REPORT.md (default: outputs/report)
  data=PATH                   the data folder (sets NNBASICS_DATA)
  population=true|false       train an experiment's compatible runs together in one process
                              (default: true); false: every run one by one, for comparison
"""


def parse_args(argv: Sequence[str]) -> tuple[list[str], dict[str, Any]]:
    ids, opts = [], {"budget": "default", "seeds": list(DEFAULT_SEEDS), "device": "auto", "threads": None,
                     "out": "outputs/experiments", "report": "outputs/report", "data": None, "population": True}
    for arg in argv:
        if "=" not in arg:
            ids.append(arg)
            continue
        key, value = arg.split("=", 1)
        key = key.lstrip("-")
        if key not in opts:
            raise ExperimentError(f"unknown option {key!r}; valid: {', '.join(opts)}")
        if key == "seeds":
            try:
                parts = [int(p) for p in value.split(",") if p.strip()]
            except ValueError:
                raise ExperimentError(f"seeds={value!r}: give a count (seeds=3) or a list (seeds=0,4,7)") from None
            if len(parts) == 1 and "," not in value:
                if parts[0] < 1:
                    raise ExperimentError(f"seeds={value}: need at least one seed")
                parts = list(range(parts[0]))
            opts["seeds"] = parts
        elif key == "threads":
            opts["threads"] = int(value)
        elif key == "population":
            if value.lower() not in ("true", "false"):
                raise ExperimentError(f"population={value!r}: give true or false")
            opts["population"] = value.lower() == "true"
        elif key == "budget":
            if value not in BUDGETS:
                raise ExperimentError(f"budget={value!r} is not allowed; choose one of {', '.join(BUDGETS)}")
            opts["budget"] = value
        else:
            opts[key] = value
    return ids, opts


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(__doc__.strip() + "\n\n" + USAGE)
        return 0
    try:
        ids, opts = parse_args(argv)
        known = discover()
        if opts["data"]:
            os.environ["NNBASICS_DATA"] = str(Path(opts["data"]).expanduser().resolve())
        if ids == ["list"]:
            for exp_id, path in known.items():
                module = load_module(path)
                print(f"{exp_id:4s} {path.name:34s} {module.CLAIM}")
            return 0
        out, report_dir = Path(opts["out"]), Path(opts["report"])
        cmd_for_report = "nnbasics-experiment " + " ".join(argv)
        if ids == ["report"]:
            print(f"report: {write_report(out, opts['budget'], report_dir, claims_of(known), None)}")
            return 0
        if not ids:
            raise ExperimentError("name at least one experiment ID, or all")
        if [i.lower() for i in ids] == ["all"]:
            chosen = list(known)
        else:
            chosen = []
            for i in ids:
                if i.upper() not in known:
                    raise ExperimentError(f"no experiment {i!r} in {experiments_dir()}; known: {', '.join(known) or 'none'}")
                chosen.append(i.upper())
    except ExperimentError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING)
    records = [run_experiment(known[i], opts["budget"], opts["seeds"], out, opts["device"], opts["threads"],
                              population=opts["population"])
               for i in chosen]
    report = write_report(out, opts["budget"], report_dir, claims_of(known), cmd_for_report)
    print()
    for r in records:
        print(f"{r['id']:4s} {verdict_word(r.get('verdict'), r['status'], opts['budget']):16s} {duration(r['wall_time_s']):>9s}  "
              f"{r.get('summary') or r.get('error', '')}")
    print(f"report: {report}")
    return 1 if any(r["status"] != "ok" for r in records) else 0


if __name__ == "__main__":
    sys.exit(main())
