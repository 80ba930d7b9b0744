"""The numbers and tables of the experiment suite: means over seeds, formatting, markdown
tables, and reading training curves."""

from __future__ import annotations

import math
from typing import Any, Iterable, Sequence


def mean_std(values: Iterable[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (n - 1; 0 for a single value) of the finite values;
    (nan, nan) when none is finite. NaN and Inf values (diverged runs) are left out."""
    vals = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not vals:
        return float("nan"), float("nan")
    m = sum(vals) / len(vals)
    if len(vals) == 1:
        return m, 0.0
    return m, math.sqrt(sum((v - m) ** 2 for v in vals) / (len(vals) - 1))


def fmt(mean: float, std: float | None = None, digits: int = 3, percent: bool = False) -> str:
    """``0.912 ± 0.004`` (or ``91.2 ± 0.4 %`` with percent); ``n/a`` when the mean is nan."""
    if mean is None or not math.isfinite(mean):
        return "n/a"
    scale, unit = (100.0, " %") if percent else (1.0, "")
    d = max(0, digits - 2) if percent else digits
    text = f"{mean * scale:.{d}f}"
    if std is not None and math.isfinite(std):
        text += f" ± {std * scale:.{d}f}"
    return text + unit


def fmt_values(values: Iterable[float], digits: int = 3, percent: bool = False) -> str:
    """``fmt(*mean_std(values))``, with the count of non-finite values (diverged runs) noted."""
    values = list(values)
    bad = sum(1 for v in values if v is None or not math.isfinite(float(v)))
    text = fmt(*mean_std(values), digits=digits, percent=percent)
    return text + (f" ({bad}/{len(values)} diverged)" if bad else "")


def md_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A markdown table; cells are str()-ed, floats with 4 significant digits."""
    def cell(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.4g}"
        return str(v).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def first_at(history: Sequence[dict], key: str, below: float | None = None, above: float | None = None,
             unit: str = "epoch") -> float:
    """The first ``unit`` (epoch or step) at which ``history[i][key]`` drops below ``below`` (or
    rises above ``above``); inf when it never does."""
    for row in history:
        v = row.get(key)
        if v is None or not math.isfinite(v):
            continue
        if (below is not None and v < below) or (above is not None and v > above):
            return float(row[unit])
    return float("inf")


def curve_at(curve: Sequence[Sequence[float]], step: int, window: int = 1) -> float:
    """The training loss of a per-step curve ([step, time_s, loss] rows) at ``step``: the mean
    over the ``window`` logged points at or before it (nan when there are none)."""
    pts = [r[2] for r in curve if r[0] <= step]
    if not pts:
        return float("nan")
    pts = pts[-window:]
    return sum(pts) / len(pts)


def smooth(values: Sequence[float], k: int) -> list[float]:
    """A trailing moving average over ``k`` points (for noisy mini-batch loss curves)."""
    out, acc = [], []
    for v in values:
        acc.append(v)
        if len(acc) > k:
            acc.pop(0)
        out.append(sum(acc) / len(acc))
    return out


# --- the verdict rule ---------------------------------------------------------------------------
#
# One rule for every experiment of the suite, stated here once:
#
# * Thresholds come from the claim (or its source), are written in the experiment before any run,
#   and are scale-aware: "stuck at chance" means a loss near ln C for C classes (``chance_loss``),
#   never a constant that assumes 10 classes.
# * Where a verdict compares two arms over seeds, the deciding difference must exceed the seed
#   spread: ``separated(a, b)`` is true when |mean_a - mean_b| >= K_SE * sqrt(se_a^2 + se_b^2)
#   (se = sample std / sqrt(n)), i.e. at least two standard errors of the difference. Where one
#   arm is compared with a fixed threshold, ``beyond(values, threshold)`` asks the same of the mean
#   against the threshold.
# * A claim that the numbers at hand cannot decide (too few seeds, an arm the library lacks) is
#   None, "inconclusive at this budget: ..." - never a verdict nudged toward a measured number.
# * At budget=smoke (toy data, seconds) there are no verdicts at all: the runner records
#   "smoke: runs only".

K_SE = 2.0
"""How many standard errors of the difference a HELD needs (see ``separated``)."""


def finite(values: Iterable[float]) -> list[float]:
    """The finite values of ``values`` as floats (NaN / Inf from diverged runs and None left out)."""
    return [float(v) for v in values if v is not None and math.isfinite(float(v))]


def std_err(values: Iterable[float]) -> float:
    """Standard error of the mean of the finite values: sample std / sqrt(n) (0 for one value,
    nan for none)."""
    vals = finite(values)
    if not vals:
        return float("nan")
    return mean_std(vals)[1] / math.sqrt(len(vals))


def _as_list(values: Iterable[float] | float) -> list[float]:
    return [values] if isinstance(values, (int, float)) else list(values)


def separated(a_values: Iterable[float] | float, b_values: Iterable[float] | float, k: float = K_SE,
              paired: bool = False) -> bool:
    """The suite's rule for a difference between two arms: True when

        |mean_a - mean_b| >= k * sqrt(se_a^2 + se_b^2),   se = sample std / sqrt(n),

    or, with ``paired=True`` (the arms share seeds and are compared seed by seed), when the mean of
    the per-seed differences d = a - b is at least k standard errors of d away from 0.

    over the finite values (a diverged run's NaN is left out; the caller counts divergence
    itself when it matters). With k = 2 (``K_SE``) a difference must be at least two standard
    errors of the difference: a gap inside the seed spread never decides a verdict. A difference
    of zero is never separated (not even between two noiseless arms); an arm with no finite value
    separates nothing. Use ``mean_a > mean_b and separated(a, b)`` for a one-sided claim.
    """
    got = _difference(a_values, b_values, paired)
    if got is None:
        return False
    d, se = got
    return d != 0 and abs(d) >= k * se


def _difference(a_values: Iterable[float] | float, b_values: Iterable[float] | float,
                paired: bool) -> tuple[float, float] | None:
    """The difference mean_a - mean_b and its standard error sqrt(se_a^2 + se_b^2), or (paired)
    the mean of the per-seed differences and its standard error, over the finite values; None
    when an arm (or every pair) has no finite value."""
    if paired:
        d = finite(x - y for x, y in zip(_as_list(a_values), _as_list(b_values)))
        if not d:
            return None
        return sum(d) / len(d), (std_err(d) if len(d) > 1 else 0.0)
    a, b = finite(_as_list(a_values)), finite(_as_list(b_values))
    if not a or not b:
        return None
    se = math.sqrt((std_err(a) if len(a) > 1 else 0.0) ** 2 + (std_err(b) if len(b) > 1 else 0.0) ** 2)
    return sum(a) / len(a) - sum(b) / len(b), se


def within(a_values: Iterable[float] | float, b_values: Iterable[float] | float, margin: float, *,
           k: float = K_SE, paired: bool = False, one_sided: bool = False) -> bool | None:
    """An equivalence claim, "a equals b within +-margin", under the rule, three ways (two one-sided
    tests): True when the difference d = a - b (``_difference``) lies inside (-margin, margin) by
    ``k`` standard errors of d on both sides; False when it lies outside by ``k`` standard errors
    (the seeds contradict the claim); None when the band d +- k se straddles a bound, or an arm has
    no finite value. ``one_sided``: non-inferiority, "a is at most margin below b" (only the lower
    bound counts: True when d - k se > -margin, False when d + k se < -margin)."""
    got = _difference(a_values, b_values, paired)
    if got is None:
        return None
    d, se = got
    lo, hi = d - k * se, d + k * se
    if one_sided:
        return True if lo > -margin else (False if hi < -margin else None)
    if -margin < lo and hi < margin:
        return True
    if lo > margin or hi < -margin:
        return False
    return None


def beyond(values: Iterable[float] | float, threshold: float, *, above: bool, k: float = K_SE) -> bool:
    """The same rule against a fixed threshold: the mean is above (or below) ``threshold`` by at
    least ``k`` standard errors of the mean (over the finite values; False when there are none)."""
    vals = finite(_as_list(values))
    if not vals:
        return False
    m = sum(vals) / len(vals)
    margin = k * (std_err(vals) if len(vals) > 1 else 0.0)
    return (m - margin > threshold) if above else (m + margin < threshold)


def chance_loss(classes: int) -> float:
    """The cross-entropy of a uniform guess over ``classes`` classes, ln C: where a classifier
    that learned nothing sits (2.303 for 10 classes, 1.099 for 3)."""
    if classes < 2:
        raise ValueError(f"classes={classes}: a classifier needs at least 2 classes")
    return math.log(classes)


def chance_acc(classes: int) -> float:
    """The accuracy of a uniform guess over ``classes`` balanced classes, 1 / C."""
    return 1.0 / classes


def enough_seeds(*arms: Sequence[float], n: int = 2) -> bool:
    """Every arm holds at least ``n`` finite values: the least a seed spread can be measured on."""
    return all(len(finite(a)) >= n for a in arms)


INCONCLUSIVE = "inconclusive at this budget: "
"""The opening of the reason of a verdict that the numbers at hand cannot decide."""


def mean(values: Iterable[float] | float) -> float:
    """The mean of the finite values (nan when there are none)."""
    return mean_std(_as_list(values))[0]


def less(a_values: Iterable[float] | float, b_values: Iterable[float] | float, k: float = K_SE,
         paired: bool = False) -> bool:
    """mean_a < mean_b, and the two are ``separated`` (the one-sided form of the rule)."""
    if paired:
        d = finite(x - y for x, y in zip(_as_list(a_values), _as_list(b_values)))
        return bool(d) and sum(d) / len(d) < 0 and separated(a_values, b_values, k, paired=True)
    return mean(a_values) < mean(b_values) and separated(a_values, b_values, k)


def greater(a_values: Iterable[float] | float, b_values: Iterable[float] | float, k: float = K_SE,
            paired: bool = False) -> bool:
    """mean_a > mean_b, and the two are ``separated``."""
    return less(b_values, a_values, k, paired)


def lower(a_values: Iterable[float] | float, b_values: Iterable[float] | float, k: float = K_SE,
          paired: bool = False) -> bool | None:
    """A one-sided claim "a is below b" under the rule, three ways: True when mean_a < mean_b and
    the two are ``separated``; False when mean_a > mean_b, separated (the seeds contradict the
    claim); None when they are not separated (the difference is inside the seed spread: the seeds
    cannot decide it either way, see ``checks_verdict``)."""
    if less(a_values, b_values, k, paired):
        return True
    if less(b_values, a_values, k, paired):
        return False
    return None


def higher(a_values: Iterable[float] | float, b_values: Iterable[float] | float, k: float = K_SE,
           paired: bool = False) -> bool | None:
    """``lower(b, a)``: "a is above b", True / False / None (not separated)."""
    return lower(b_values, a_values, k, paired)


def past(values: Iterable[float] | float, threshold: float, *, above: bool, k: float = K_SE) -> bool | None:
    """``beyond`` three ways: True when the mean is past ``threshold`` on the claimed side (above,
    or below with ``above=False``) by ``k`` standard errors, False when it is so on the other side,
    None when the threshold lies inside the seed spread or no value is finite (the caller decides
    what an arm with every seed diverged means for its claim)."""
    if beyond(values, threshold, above=above, k=k):
        return True
    if beyond(values, threshold, above=not above, k=k):
        return False
    return None


def every(results: Iterable[bool | None]) -> bool | None:
    """Several three-way results that must all hold: False when any is False, else None when any
    is None (undecided), else True."""
    results = list(results)
    return False if any(r is False for r in results) else (None if any(r is None for r in results) else True)


UNDECIDED = "inside the seed spread"
"""How a check the seeds cannot decide (None) is marked in a verdict's text."""


def mark(result: bool | None) -> str:
    """A three-way check's mark in a verdict's text: ok, FAILED or inside the seed spread."""
    return UNDECIDED if result is None else ("ok" if result else "FAILED")


def three_way(held: bool | None, text: str) -> tuple[bool | None, str]:
    """A verdict ``(held, reason)`` whose reason opens with ``INCONCLUSIVE`` when ``held`` is None."""
    return held, (INCONCLUSIVE if held is None else "") + text


def checks_verdict(checks: dict[str, bool | None], note: str = "") -> tuple[bool | None, str]:
    """The usual shape of a verdict built of named conditions: "check (ok); check (FAILED); check
    (inside the seed spread)". Each check is True, False or None (a difference the seeds cannot
    decide: ``lower`` / ``higher``). The verdict is ``every`` of them: False when any check failed,
    None (the reason opening with ``INCONCLUSIVE``) when none failed and some could not be decided,
    else True: a difference inside the seed spread neither holds a claim nor refutes it."""
    text = "; ".join(f"{k} ({mark(v)})" for k, v in checks.items()) + (f" {note}" if note else "")
    return three_way(every(checks.values()), text)


STUCK = 0.95
"""A classifier is "stuck at chance" while its mean loss is at least STUCK x ln C (``stuck_loss``)."""


def stuck_loss(classes: int) -> float:
    """The loss above which a classifier counts as stuck at chance: ``STUCK`` x ln C (2.19 for 10
    classes, 1.04 for 3). Scale-aware, for every "stalls" / "never learns" claim of the suite."""
    return STUCK * chance_loss(classes)


def train_test_gaps(results: dict[str, Sequence[dict]], ref: dict[str, Sequence[str]]
                    ) -> tuple[list[list], dict[str, dict[str, float]], dict[str, list[float]]]:
    """The train/test gap of each arm of ``results`` (``{arm: [run per seed]}``, runs with final
    ``train/acc`` and ``test/acc``): table rows ``[arm, train, test, gap, *ref[arm]]``, the means
    per arm (``{arm: {train_acc, test_acc, gap}}``) and the per-seed lists
    (``{"<arm>/train_acc" | "<arm>/test_acc" | "<arm>/gap": [...]}``, what ``gap_narrows`` reads)."""
    rows, means, per_seed = [], {}, {}
    for arm, runs in results.items():
        tr, te = [r["train/acc"] for r in runs], [r["test/acc"] for r in runs]
        gap = [a - b for a, b in zip(tr, te)]
        per_seed.update({f"{arm}/train_acc": tr, f"{arm}/test_acc": te, f"{arm}/gap": gap})
        means[arm] = {"train_acc": mean_std(tr)[0], "test_acc": mean_std(te)[0], "gap": mean_std(gap)[0]}
        rows.append([arm, fmt(*mean_std(tr)), fmt(*mean_std(te)), fmt(*mean_std(gap)), *ref[arm]])
    return rows, means, per_seed


def arm_accuracies(numbers: dict, arm: str) -> str:
    """"train 0.90 ± 0.05 / test 0.71 ± 0.03" from an arm's per-seed ``<arm>/train_acc`` and
    ``<arm>/test_acc`` (train left out when the run did not record it)."""
    tr, te = (list(numbers.get(f"{arm}/{k}") or []) for k in ("train_acc", "test_acc"))
    return (f"train {fmt(*mean_std(tr))} / " if finite(tr) else "") + f"test {fmt(*mean_std(te))}"


def gap_change(numbers: dict, without: str, with_: str) -> tuple[int, str]:
    """For "why ours may differ" of a gap-narrowing claim: the number of seeds both arms finished
    and the sentence saying how the train-test gap (``<arm>/gap`` per seed) moved, against ``K_SE``
    standard errors of the difference ("" when an arm has no finite gap)."""
    g0, g1 = (list(numbers.get(f"{a}/gap") or []) for a in (without, with_))
    n = min(len(finite(g0)), len(finite(g1)))
    got = _difference(g0, g1, paired=False)
    if got is None:
        return n, ""
    d, se = got
    change = f"narrowed by {d:.3f}" if d >= 5e-4 else (f"widened by {-d:.3f}" if d <= -5e-4 else "did not change")
    return n, (f" The gap {change} ({fmt(*mean_std(g0))} -> {fmt(*mean_std(g1))}); {K_SE:g} standard errors of the "
               f"difference over these seeds are {fmt(K_SE * se)}.")


def gap_narrows(numbers: dict[str, list[float]], without: str, with_: str) -> tuple[bool | None, str]:
    """The verdict of "a regularizer narrows the train-test gap": held when arm ``with_``'s per-seed
    gaps are below arm ``without``'s, separated by the suite's rule; not held when above, separated;
    else inside the seed spread (``lower``)."""
    g0, g1 = numbers[f"{without}/gap"], numbers[f"{with_}/gap"]
    held = lower(g1, g0)
    return three_way(held, f"train-test gap: {without} {fmt(*mean_std(g0))}, {with_} {fmt(*mean_std(g1))}; reduction "
                          f"{mean(g0) - mean(g1):.3f} (held if smaller, separated by >= 2 standard errors; not if larger, separated; else undecided); test acc "
                          f"{mean(numbers[f'{without}/test_acc']):.3f} -> {mean(numbers[f'{with_}/test_acc']):.3f}")
