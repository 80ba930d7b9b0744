"""batch_size=auto: halve on (simulated and real) out-of-memory errors, end with a size that
fits, and leave the model, its gradients and the random number generators as they were."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from conftest import TOY
from nnbasics.engine.batch_size import find_batch_size, is_out_of_memory
from nnbasics.data.datasets import Split

CUDA_OOM = lambda: torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")  # noqa: E731
CPU_OOM = lambda: RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't "  # noqa: E731
                               "allocate memory: you tried to allocate 4294967296 bytes.")
PY_OOM = lambda: MemoryError()  # noqa: E731


def real_cpu_allocation_failure():
    """A genuine allocator failure: 32 TiB cannot be had (raises RuntimeError: DefaultCPUAllocator...)."""
    torch.empty(2 ** 45, dtype=torch.uint8)
    raise AssertionError("the allocation was expected to fail")


class Limited(nn.Module):
    """A small network with batch norm and dropout whose forward (or backward) fails with
    ``error`` when the batch holds more than ``limit`` samples, like running out of memory."""

    def __init__(self, limit: int, error=CUDA_OOM, where: str = "forward"):
        super().__init__()
        self.limit, self.error, self.where = limit, error, where
        self.net = nn.Sequential(nn.Linear(4, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 3))
        self.sizes: list[int] = []

    def forward(self, x):
        self.sizes.append(len(x))
        if len(x) > self.limit and self.where == "forward":
            raise self.error()
        out = self.net(x)
        return FailInBackward.apply(out, self.error) if len(x) > self.limit else out


class FailInBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, error):
        ctx.error = error
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        raise ctx.error()


def split(n: int = 1000) -> Split:
    g = torch.Generator().manual_seed(0)
    return Split(torch.randn(n, 4, generator=g), torch.randint(0, 3, (n,), generator=g))


@pytest.mark.parametrize("error", [CUDA_OOM, CPU_OOM, PY_OOM, real_cpu_allocation_failure],
                         ids=["cuda-oom", "cpu-allocator-message", "MemoryError", "real-cpu-allocation-failure"])
@pytest.mark.parametrize("where", ["forward", "backward"])
def test_halves_on_out_of_memory_until_a_step_fits(error, where):
    model = Limited(limit=200, error=error, where=where)
    messages: list[str] = []
    size = find_batch_size(model, nn.functional.cross_entropy, split(), start=512, log=messages.append)
    assert size == 128
    assert model.sizes == [512, 256, 128]
    assert len(messages) == 3 and "512" in messages[0] and "256" in messages[1] and "using 128" in messages[2]
    assert all(p.grad is None for p in model.parameters())


def test_state_is_clean_after_failed_and_successful_attempts():
    """Buffers (batch-norm running statistics), gradients and the RNG (dropout masks) are as
    they were before the search, so the run that follows is the run batch_size=128 would be."""
    torch.manual_seed(0)
    model = Limited(limit=200, error=CPU_OOM, where="backward")
    for p in model.parameters():
        p.grad = torch.full_like(p, 7.0)   # gradients that were there before stay untouched
    buffers = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    find_batch_size(model, nn.functional.cross_entropy, split(), start=512, log=lambda m: None)
    for k, v in model.state_dict().items():
        assert torch.equal(v, buffers[k]), k
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(torch.equal(p.grad, torch.full_like(p, 7.0)) for p in model.parameters())


def test_failed_attempts_release_their_activations(monkeypatch):
    """Nothing of a failed attempt is alive when the memory is handed back (empty_cache) or the
    next attempt starts: the activations saved for backward (what fills the memory) are freed."""
    import weakref

    from nnbasics.engine import batch_size as batching

    refs, alive_at_start, alive_at_free = [], [], []
    monkeypatch.setattr(batching, "_free_memory", lambda: alive_at_free.append(sum(r() is not None for r in refs)))

    class Tracked(Limited):
        def forward(self, x):
            alive_at_start.append(sum(r() is not None for r in refs))
            h = self.net[:-1](x)                  # saved by the last Linear for its backward
            refs.append(weakref.ref(h))
            out = self.net[-1](h)
            return FailInBackward.apply(out, self.error) if len(x) > self.limit else out

    model = Tracked(limit=200, error=CPU_OOM, where="backward")
    assert find_batch_size(model, nn.functional.cross_entropy, split(), start=512, log=lambda m: None) == 128
    assert alive_at_free == [0, 0] and alive_at_start == [0, 0, 0] and len(refs) == 3
    assert all(r() is None for r in refs)


def test_other_errors_propagate_and_still_restore_state():
    model = Limited(limit=0, error=lambda: RuntimeError("mat1 and mat2 shapes cannot be multiplied"))
    buffers = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(RuntimeError, match="shapes"):
        find_batch_size(model, nn.functional.cross_entropy, split(), start=512, log=lambda m: None)
    assert model.sizes == [512]
    assert all(torch.equal(v, buffers[k]) for k, v in model.state_dict().items())


def test_nothing_fits_is_a_memory_error():
    model = Limited(limit=0, error=CUDA_OOM)
    with pytest.raises(MemoryError, match="not even a batch of 1"):
        find_batch_size(model, nn.functional.cross_entropy, split(), start=8, log=lambda m: None)
    assert model.sizes == [8, 4, 2, 1]


def test_small_split_starts_at_its_size():
    model = Limited(limit=10 ** 6)
    assert find_batch_size(model, nn.functional.cross_entropy, split(300), start=512, log=lambda m: None) == 300


@pytest.mark.parametrize("err,oom", [
    (torch.OutOfMemoryError("CUDA out of memory"), True),
    (RuntimeError("CUDA error: out of memory"), True),
    (RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 1 bytes"), True),
    (RuntimeError("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling cublasCreate(handle)"), True),
    (MemoryError(), True),
    (RuntimeError("mat1 and mat2 shapes cannot be multiplied (4x3 and 4x5)"), False),
    (ValueError("out of memory"), False),
])
def test_is_out_of_memory(err, oom):
    assert is_out_of_memory(err) is oom


def test_training_run_with_auto_batch_size_and_simulated_oom(compose, tmp_path, monkeypatch):
    """train(batch_size=auto) with a model that runs out of memory above 200 samples per step:
    512 and 256 fail, 128 is used, and the run equals the run with batch_size=128 bit for bit
    (the failed attempts left no trace: batch-norm statistics, dropout RNG)."""
    from nnbasics.engine import train as train_mod

    build = train_mod.build_model
    attempts: list[int] = []

    class OOMAbove(nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            if torch.is_grad_enabled():   # training steps; evaluation (no grad) is free
                attempts.append(len(x))
                if len(x) > 200:
                    raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
            return self.inner(x)

    monkeypatch.setattr(train_mod, "build_model", lambda *a, **k: OOMAbove(build(*a, **k)))
    common = TOY + ["model.norm=batch", "model.dropout.p=0.3", "epochs=2", "checkpoint=false"]
    auto = train_mod.train(compose(common + ["batch_size=auto"]), run_dir=tmp_path / "auto")
    assert auto["status"] == "completed" and auto["batch_size"] == 128
    assert attempts[:3] == [512, 256, 128] and max(attempts[3:]) <= 128
    fixed = train_mod.train(compose(common + ["batch_size=128"]), run_dir=tmp_path / "fixed")
    for key in ("train/loss", "val/loss", "val/acc", "steps"):
        assert auto[key] == fixed[key], key
