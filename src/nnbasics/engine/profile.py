"""`profile=true` (``debug=profiler``): a few updates of the training loop under ``torch.profiler``,
the trace written where TensorBoard finds it.

    profiler, on_step = profiler_for(cfg, run_dir)     # (nullcontext(), None) when profile is off
    with profiler:
        loop.run(..., on_step=on_step)                  # on_step(progress) after every update

``torch.profiler.profile`` with ``schedule(wait=1, warmup=1, active=3, repeat=1)``: the first
update is skipped (allocations, lazy initialisation), the second warms the profiler up, the next
three are recorded, and then nothing more (``repeat=1``), so a long run pays for five updates only.
Activities: the CPU, and CUDA when the run's device is a GPU. The trace goes to ``<run dir>/tb/``
(``tensorboard_trace_handler``: ``<host>_<pid>.<time>.pt.trace.json``), beside the run's
TensorBoard events: ``nnbasics-board --logdir <run dir>`` shows it in the PYTORCH_PROFILER tab when
the ``torch-tb-profiler`` plugin is installed; chrome://tracing or ui.perfetto.dev open the file as
it is. The schedule counts ``on_step`` calls, one per update; a run of fewer than three updates
records nothing, and says so.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import Any, Callable, ContextManager, Mapping

log = logging.getLogger("nnbasics")

WAIT, WARMUP, ACTIVE, REPEAT = 1, 1, 3, 1  # updates: skipped, warming up, recorded; windows
TRACE_GLOB = "*.pt.trace.json"            # what tensorboard_trace_handler writes


def profiler_for(cfg: Mapping, run_dir: str | os.PathLike) -> tuple[ContextManager, Callable[[Any], None] | None]:
    """The context manager to run the training loop in and the step callback to hand the loop
    (``on_step``): a ``torch.profiler.profile`` and its ``step`` when ``cfg.profile`` is true,
    else ``(contextlib.nullcontext(), None)``."""
    if not cfg.get("profile", False):
        return contextlib.nullcontext(), None
    from torch import profiler as tp

    from nnbasics.engine.setup import resolve_device

    activities = [tp.ProfilerActivity.CPU]
    if resolve_device(str(cfg.get("device", "auto"))).type == "cuda":
        activities.append(tp.ProfilerActivity.CUDA)
    tb = Path(run_dir) / "tb"
    prof = tp.profile(activities=activities, schedule=tp.schedule(wait=WAIT, warmup=WARMUP, active=ACTIVE, repeat=REPEAT),
                      on_trace_ready=tp.tensorboard_trace_handler(str(tb)), record_shapes=True,
                      profile_memory=len(activities) > 1)  # the memory view, on a GPU
    return _Reported(prof, tb), lambda progress=None: prof.step()


class _Reported(contextlib.AbstractContextManager):
    """The profiler, and one log line when it stops: where the trace is, or why there is none."""

    def __init__(self, prof, tb: Path):
        self.prof, self.tb = prof, tb

    def __enter__(self):
        self.before = set(self.tb.glob(TRACE_GLOB)) if self.tb.is_dir() else set()
        self.prof.__enter__()
        log.info(f"profiling updates {WAIT + WARMUP + 1}-{WAIT + WARMUP + ACTIVE} with torch.profiler "
                 f"(trace into {self.tb})")
        return self.prof

    def __exit__(self, *exc):
        result = self.prof.__exit__(*exc)
        new = sorted(set(self.tb.glob(TRACE_GLOB)) - self.before) if self.tb.is_dir() else []
        if new:
            log.info(f"profiler trace: {new[-1]} (TensorBoard's PYTORCH_PROFILER tab with torch-tb-profiler, "
                     f"or chrome://tracing)")
        elif exc[0] is None:
            log.warning(f"warning: no profiler trace: the run ended before update {WAIT + WARMUP + 1} "
                        f"(profiling records updates {WAIT + WARMUP + 1}-{WAIT + WARMUP + ACTIVE}); set steps >= "
                        f"{WAIT + WARMUP + ACTIVE}")
        return result


__all__ = ["profiler_for", "TRACE_GLOB"]
