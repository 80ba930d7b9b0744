"""`batch_size: auto`: start at 512 and halve on out-of-memory until a training step fits.

One probe is a forward and backward pass on the first ``size`` training samples. A probe leaves
no trace: gradients, buffers (e.g. batch-norm running statistics) and the random number
generators (dropout masks) are restored after every attempt, failed or not, so a run with
``batch_size=auto`` that settles on B is the same run as ``batch_size=B``.
"""

from __future__ import annotations

import gc
from typing import Callable

import torch

OOM_MESSAGES = (
    "out of memory",                 # CUDA ("CUDA out of memory"), MPS, XPU
    "can't allocate memory",         # CPU: "DefaultCPUAllocator: can't allocate memory"
    "cublas_status_alloc_failed",    # cuBLAS could not allocate its workspace
    "std::bad_alloc",                # CPU allocation failure surfaced from C++
)


def is_out_of_memory(err: BaseException) -> bool:
    """CUDA OOM (``torch.OutOfMemoryError``), a CPU allocation failure (``MemoryError``, or
    ``RuntimeError: DefaultCPUAllocator: can't allocate memory``), or another backend's OOM."""
    if isinstance(err, (torch.cuda.OutOfMemoryError, MemoryError)):
        return True
    return isinstance(err, RuntimeError) and any(m in str(err).lower() for m in OOM_MESSAGES)


def _free_memory() -> None:
    """Free what the failed attempt held: reference cycles among its young objects (generations
    0 and 1; a full collection costs ~0.2 s in a loaded process), then CUDA's cached blocks."""
    gc.collect(1)
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def find_batch_size(model, loss_fn, split, start: int = 512, log: Callable[[str], None] = print) -> int:
    """The largest of ``start, start/2, start/4, ..., 1`` (capped at the split's size) for which
    one forward and backward pass of ``model`` on that many training samples fits in memory.

    Halves on CUDA out-of-memory and CPU allocation failures; any other error propagates.
    ``log`` gets one line per failed size, ``batch_size=auto: <size> ran out of memory, halving
    (<error type>: <message>)``, then the size chosen. Raises MemoryError when not even one
    sample fits."""
    size = min(int(start), len(split))
    params = list(model.parameters())
    grads = [p.grad for p in params]
    buffers = {name: b.detach().clone() for name, b in model.named_buffers()}
    cpu_rng = torch.get_rng_state()
    cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else None

    def restore() -> None:
        for p, g in zip(params, grads):
            p.grad = g
        with torch.no_grad():
            for name, b in model.named_buffers():
                if name in buffers:
                    b.copy_(buffers[name])
        torch.set_rng_state(cpu_rng)
        if cuda_rng is not None:
            torch.cuda.set_rng_state_all(cuda_rng)

    while size >= 1:
        for p in params:
            p.grad = None
        oom, loss = False, None
        try:
            loss = loss_fn(model(split.x[:size]), split.y[:size])
            loss.backward()
        except (RuntimeError, MemoryError) as err:
            if not is_out_of_memory(err):
                raise
            why = f"{type(err).__name__}: {' '.join(str(err).split())[:300]}"  # one line, for the log
            oom = True            # handled outside the except block, once the traceback (and the
        finally:                  # activations its frames hold) is gone
            loss = None           # the graph and its saved activations go now, not at the next attempt
            restore()
        if not oom:
            log(f"batch_size=auto: using {size} (a training step of {size} samples fits)")
            return size
        _free_memory()
        log(f"batch_size=auto: {size} ran out of memory, halving ({why})")
        size //= 2
    raise MemoryError("batch_size=auto: not even a batch of 1 fits in memory; lower model.width or use a smaller model")
