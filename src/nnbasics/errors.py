"""The errors nnbasics raises on purpose: each carries one message that says what is wrong and
how to fix it. The command-line entry points print that message (no traceback) and exit non-zero."""


class NNBasicsError(Exception):
    """Base class: an error whose message is meant for the user."""


class ConfigError(NNBasicsError, ValueError):
    """A config value is not allowed: names the key, the value and what is allowed."""

    def __init__(self, key: str, value, allowed: str):
        self.key, self.value, self.allowed = key, value, allowed
        super().__init__(f"config error: {key}={value!r} is not allowed; {allowed}")


class DataError(NNBasicsError, RuntimeError):
    """Data is missing, truncated or corrupted, and cannot be fetched."""


class DivergenceError(NNBasicsError, FloatingPointError):
    """The training loss became NaN or Inf."""

    def __init__(self, step: int, loss: float):
        self.step, self.loss = step, loss
        super().__init__(
            f"training diverged: loss is {loss} at step {step}. Lower optimizer.lr, add warm-up "
            f"(scheduler.warmup_steps), or check the data; the run is recorded as diverged."
        )


class Unsupported(NNBasicsError):
    """These configs cannot be trained as one population (train them one by one instead)."""
