"""`nnbasics-board`: serve the TensorBoard dashboards of a folder of runs on 127.0.0.1.

    nnbasics-board                          # outputs/ (every run and multirun), port 6006
    nnbasics-board --logdir outputs/multirun/2025-01-01/12-00-00_ab12cd --port 6007

Every run directory keeps its events in ``tb/``; TensorBoard finds them recursively, so a
multirun's jobs appear as runs ``0/tb``, ``1/tb``, ... side by side, and in one HPARAMS table
whose ``overrides`` column tells them apart (open one sweep's folder to compare it: TensorBoard
takes the HPARAMS columns of one run for the whole logdir). The same as ``make tensorboard``. What each dashboard shows: docs/dashboards.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nnbasics-board", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--logdir", default="outputs", help="folder searched recursively for runs (default: outputs)")
    p.add_argument("--port", type=int, default=6006, help="port to serve on (default: 6006; 0 picks a free one)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default: 127.0.0.1, this machine only; 0.0.0.0 exposes the board "
                        "to the network, without authentication)")
    p.add_argument("--reload-interval", type=float, default=15.0,
                   help="seconds between rescans of the logdir for new events (default: 15)")
    p.add_argument("--load-fast", choices=("auto", "true", "false"), default="false",
                   help="TensorBoard's Rust data server: false (default) reads the events in Python, which "
                        "keeps the final hparams metric values exactly as written; auto/true are faster on "
                        "large sweeps")
    return p


def tensorboard_argv(args: argparse.Namespace) -> list[str]:
    """The argument vector handed to TensorBoard (program name first)."""
    return ["tensorboard", "--logdir", str(args.logdir), "--host", args.host, "--port", str(args.port),
            "--reload_interval", str(args.reload_interval), "--load_fast", args.load_fast]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logdir = Path(args.logdir)
    if not logdir.is_dir():
        print(f"error: no folder {logdir} (train a run first: nnbasics-train, or pass --logdir)", file=sys.stderr)
        return 2
    if not any(logdir.rglob("events.out.tfevents.*")):
        print(f"warning: no TensorBoard events under {logdir} yet; the board fills in as runs write them",
              file=sys.stderr)
    from tensorboard import program

    tb = program.TensorBoard()
    tb.configure(argv=tensorboard_argv(args))
    return int(tb.main() or 0)


if __name__ == "__main__":
    sys.exit(main())
