"""batch_size=auto against a real CPU out-of-memory: a forked child of this process caps its own
address space (RLIMIT_AS) at what a step of ~96 samples needs (measured, not guessed), so 512
and 256 fail inside torch's allocator with its own error and the search halves down to a size
that fits (64, or 128 when free heap left by earlier tests lets it fit).

The simulated errors of test_batching.py pin the message strings; this checks that the message
torch really raises when memory runs out is one ``is_out_of_memory`` recognises."""

from __future__ import annotations

import json
import os
import sys

import pytest
import torch
from torch import nn

from nnbasics.engine.batch_size import find_batch_size, is_out_of_memory
from nnbasics.data.datasets import Split

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux") or not hasattr(os, "fork"),
                                reason="RLIMIT_AS is enforced (and /proc/self/status read) on Linux only")

WIDE = 65536  # hidden units: ~1 MB of activations and their gradients per sample, for ~1 M parameters


def vm(key: str = "VmSize") -> int:
    """This process's virtual size (or VmPeak) in bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(key)


def in_fork(fn) -> dict:
    """fn() -> dict in a forked child (a copy of this process: no new interpreter, no torch
    import); its JSON comes back through a pipe. The child never returns into pytest."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            payload = json.dumps(fn())
        except BaseException as e:  # noqa: BLE001 - reported to the parent
            payload = json.dumps({"child_error": f"{type(e).__name__}: {e}"})
        finally:
            with os.fdopen(write, "w") as f:
                f.write(payload)
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as f:
        out = json.loads(f.read() or "{}")
    os.waitpid(pid, 0)
    assert "child_error" not in out, out["child_error"]
    return out


def capped_search() -> dict:
    import ctypes
    import resource

    try:  # big blocks by mmap, returned on free: the address space follows the live tensors
        libc = ctypes.CDLL(None)
        libc.mallopt(-3, 64 * 1024)  # M_MMAP_THRESHOLD
        libc.malloc_trim(0)  # hand back the free heap earlier tests in this worker left behind
    except (OSError, AttributeError):
        pass
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, WIDE), nn.ReLU(), nn.Linear(WIDE, 4))
    split = Split(torch.randn(512, 16), torch.randint(0, 4, (512,)))

    def step(b: int) -> None:
        model.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(split.x[:b]), split.y[:b]).backward()
        model.zero_grad(set_to_none=True)

    def need(b: int) -> dict:  # in a fork of this process, whose VmPeak starts at its VmSize
        start = vm()
        step(b)
        return {"need": vm("VmPeak") - start}

    step(8)  # one-time allocations (thread pools, BLAS buffers) before anything is measured
    need32, need64 = in_fork(lambda: need(32))["need"], in_fork(lambda: need(64))["need"]
    cap = vm() + need64 + (need64 - need32)          # what a step of 96 would need: 64 fits, 128 does not
    resource.setrlimit(resource.RLIMIT_AS, (cap, resource.getrlimit(resource.RLIMIT_AS)[1]))

    out = {"need32": need32, "need64": need64}
    try:
        step(512)
        out["error"] = None
    except Exception as e:  # noqa: BLE001 - the real error, whatever it is
        out.update(error=f"{type(e).__name__}: {e}", is_oom=is_out_of_memory(e))
    try:
        bytearray(cap)
    except MemoryError as e:
        out["python_is_oom"] = is_out_of_memory(e)
    messages: list[str] = []
    out["size"] = find_batch_size(model, nn.functional.cross_entropy, split, start=512, log=messages.append)
    out["messages"] = messages
    out["grads_clean"] = all(p.grad is None for p in model.parameters())
    return out


def test_find_batch_size_halves_on_a_real_cpu_out_of_memory():
    out = in_fork(capped_search)
    assert out["need64"] > out["need32"] > 16 * 2 ** 20, out     # ~1 MB per sample: the cap has room to separate
    assert out["error"] is not None, "a step of 512 samples fitted under the cap"
    assert "can't allocate memory" in out["error"] or out["error"].startswith("MemoryError"), out["error"]
    assert out["is_oom"] is True, f"is_out_of_memory does not recognise torch's real CPU error: {out['error']}"
    assert out["python_is_oom"] is True
    # The cap sits at what a step of ~96 samples needs, measured; free heap that earlier tests in
    # the same process left inside the address space can let one more halving's size fit, so the
    # contract is checked rather than one size: 512 failed, every attempt halves the one before,
    # every failure was logged as one, and the search stops at the first size that fits.
    sizes = [int(m.split()[1]) for m in out["messages"][:-1]]
    assert sizes[0] == 512 and all(b == a // 2 for a, b in zip(sizes, sizes[1:])), out["messages"]
    assert all("ran out of memory, halving" in m for m in out["messages"][:-1])
    assert out["size"] == sizes[-1] // 2 and 32 <= out["size"] <= 128, out["messages"]
    assert f"using {out['size']}" in out["messages"][-1]
    assert out["grads_clean"]
