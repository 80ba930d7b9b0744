"""`batch_size: auto`: start at 512 and halve on out-of-memory until a training step fits."""

from __future__ import annotations

from typing import Callable

import torch


def is_out_of_memory(err: BaseException) -> bool:
    """CUDA OOM, or a CPU allocation failure ("DefaultCPUAllocator: can't allocate memory")."""
    if isinstance(err, torch.cuda.OutOfMemoryError):
        return True
    msg = str(err)
    return isinstance(err, (RuntimeError, MemoryError)) and (
        "out of memory" in msg.lower() or "can't allocate memory" in msg or isinstance(err, MemoryError))


def find_batch_size(model, loss_fn, split, start: int = 512, log: Callable[[str], None] = print) -> int:
    """The largest of start, start/2, ... for which one forward and backward pass fits."""
    size = min(start, len(split))
    while size >= 1:
        try:
            out = model(split.x[:size])
            loss_fn(out, split.y[:size]).backward()
            model.zero_grad(set_to_none=True)
            log(f"batch_size=auto: {size} fits")
            return size
        except (RuntimeError, MemoryError) as err:
            if not is_out_of_memory(err):
                raise
            model.zero_grad(set_to_none=True)
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            log(f"batch_size=auto: {size} ran out of memory, halving")
            size //= 2
    raise MemoryError("batch_size=auto: not even a batch of 1 fits in memory")
