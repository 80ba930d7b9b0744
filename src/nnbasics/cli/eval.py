"""`nnbasics-eval ckpt_path=<run dir or checkpoint>`: a trained run, evaluated and asked to predict.

    nnbasics-eval ckpt_path=outputs/runs/<date>/<time>_<id>                  # val and test metrics
    nnbasics-eval ckpt_path=<run dir> split=none inputs=digits/ top=3         # predict image files
    nnbasics-eval ckpt_path=<run dir>/checkpoint.pt inputs=batch.pt           # predict a tensor file

Arguments are ``key=value`` like ``nnbasics-train``'s overrides:

    ckpt_path   a run directory, or a checkpoint file in one (checkpoint.pt, best.pt)    required
    split       val | test | train | both (val and test) | none                           both
    inputs      an image file, a folder of images, or a tensor file (.pt: a tensor, or a dict
                with "x" and optionally "y"); images are read as the data set's shape (grayscale
                28 x 28 for MNIST-like sets, RGB 32 x 32 for CIFAR-10, resized when needed) and
                scaled like its training data; a uint8 tensor is pixels, a float tensor is taken
                as already scaled
    top         how many classes to show per input (multiclass)                        1
    limit       how many predictions to print (0: all)                                 20
    device      cpu | cuda | auto                                                      cpu
    data.root   where the run's data set is on this machine (default: the run's own data.root)

Everything is loaded by ``nnbasics.load_run`` (the Python API) with the run's own preprocessing.
An error is one line, ``error: ...``, and exit status 2.
"""

from __future__ import annotations

import difflib
import sys
from pathlib import Path

KEYS = ("ckpt_path", "split", "inputs", "top", "limit", "device", "data.root")
SPLITS = {"both": ("val", "test"), "val": ("val",), "test": ("test",), "train": ("train",), "none": ()}
USAGE = ("usage: nnbasics-eval ckpt_path=<run dir or checkpoint.pt> [split=both|val|test|train|none] "
         "[inputs=<image | folder | tensor .pt>] [top=K] [limit=N] [device=cpu|cuda|auto] [data.root=<folder>]")


class UsageError(ValueError):
    pass


def parse(argv: list[str]) -> dict[str, str]:
    """``key=value`` arguments -> a dict; unknown keys and missing ``ckpt_path`` are refused."""
    args: dict[str, str] = {}
    for a in argv:
        key, eq, value = a.partition("=")
        if not eq:
            raise UsageError(f"{a!r} is not key=value; {USAGE}")
        key = key.lstrip("+")
        if key not in KEYS:
            near = difflib.get_close_matches(key, KEYS, n=1)
            raise UsageError(f"unknown key {key!r}" + (f" (did you mean {near[0]}?)" if near else "")
                             + f"; valid: {', '.join(KEYS)}")
        args[key] = value
    if not args.get("ckpt_path"):
        raise UsageError(f"ckpt_path is required; {USAGE}")
    if args.setdefault("split", "both") not in SPLITS:
        raise UsageError(f"split={args['split']!r}; valid: {', '.join(SPLITS)}")
    for key, default in (("top", "1"), ("limit", "20")):
        value = args.setdefault(key, default)
        if not value.isdigit() or (key == "top" and int(value) < 1):
            raise UsageError(f"{key}={value!r} must be an integer >= {1 if key == 'top' else 0}")
    return args


def _read_tensor_file(path: Path):
    """(x, y or None) of a tensor file: a tensor, or a dict with "x" (and "y")."""
    import torch

    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - a foreign or truncated file: say which
        raise ValueError(f"{path}: not a tensor file torch.load can read with weights_only=True ({e})") from None
    if isinstance(blob, torch.Tensor):
        return blob, None
    if isinstance(blob, dict) and isinstance(blob.get("x"), torch.Tensor):
        return blob["x"], blob.get("y")
    raise ValueError(f"{path} holds {type(blob).__name__}; expected a tensor or a dict with a tensor 'x'")


def _run_line(run) -> str:
    info = run.checkpoint_info
    at = f" at epoch {info['epoch']}, step {info['step']}" if "epoch" in info and "step" in info else ""
    return (f"run: {run.path}  ({run.data_name}, model {run.cfg.model.name}, task {run.task}; "
            f"{run.checkpoint.name}{at}; status {run.status})")


def _notes(run) -> list[str]:
    if run.status == "missing":
        return [f"note: {run.path} has no metrics.json (the run is still going or was killed): "
                f"using its last checkpoint"]
    if run.status == "failed":
        return [f"note: the run failed ({run.metrics.get('error', 'no error recorded')}): using its last checkpoint"]
    if run.status == "diverged":
        return [f"note: the run diverged at step {run.metrics.get('diverged_at_step')}: its weights may be NaN"]
    return []


def _metric_line(split: str, r: dict, recorded: dict) -> str:
    acc = r["acc"]
    line = f"{split + ':':6} loss {r['loss']:.4f}  acc " + ("n/a (regression)" if acc != acc else f"{acc:.4f}")
    if f"{split}/loss" in recorded:
        rec_acc = recorded.get(f"{split}/acc", float("nan"))
        line += f"   (recorded at the end of training: loss {recorded[f'{split}/loss']:.4f}" + \
                ("" if rec_acc != rec_acc else f", acc {rec_acc:.4f}") + ")"
    return line


def _prediction_lines(p, top: int, limit: int) -> list[str]:
    names = p.inputs or [str(i) for i in range(len(p))]
    width = min(max((len(n) for n in names), default=1), 60)
    shown = range(len(p)) if limit == 0 else range(min(limit, len(p)))
    lines = []
    if p.task == "multiclass":
        probs, idx = p.top(top)
        labels = [p.class_names[i] if len(p.class_names) == p.outputs.shape[1] else str(i) for i in range(p.outputs.shape[1])]
        for i in shown:
            best = f"{p.classes[i]} ({probs[i, 0]:.4f})"
            more = ""
            if top > 1:
                more = "   top-" + str(probs.shape[1]) + ": " + ", ".join(
                    f"{labels[j]} {v:.4f}" for v, j in zip(probs[i].tolist(), idx[i].tolist()))
            lines.append(f"  {names[i]:{width}}  {best}{more}")
    else:
        what = {"binary": "P(1)", "multilabel": "P(each)", "regression": "output"}[p.task]
        for i in shown:
            pr = p.probabilities[i].reshape(-1).tolist()
            lines.append(f"  {names[i]:{width}}  {p.classes[i]}   {what} " + " ".join(f"{v:.4f}" for v in pr))
    if len(shown) < len(p):
        lines.append(f"  ... and {len(p) - len(shown)} more (limit=0 prints all)")
    return lines


def run_eval(args: dict[str, str]) -> list[str]:
    """Do what ``args`` asks; return the lines to print."""
    from nnbasics.engine.load import load_run
    from nnbasics.engine.setup import resolve_device
    from nnbasics.nn.losses import correct

    run = load_run(args["ckpt_path"], device=resolve_device(args.get("device", "cpu")))
    out = [_run_line(run), *_notes(run)]
    root = args.get("data.root")
    for split in SPLITS[args["split"]]:
        out.append(_metric_line(split, run.evaluate(split, root=root), run.metrics))
    inputs = args.get("inputs")
    if inputs:
        path = Path(inputs).expanduser()
        if path.is_file() and path.suffix == ".pt":
            x, y = _read_tensor_file(path)
            p = run.predict(x)
            out.append(f"predictions for {path} ({len(p)} inputs):")
            out += _prediction_lines(p, int(args["top"]), int(args["limit"]))
            if y is not None and p.task != "regression" and len(y) == len(p):
                acc = float(correct(p.outputs, y.to(p.outputs.device), p.task)) / max(1, len(p))
                out.append(f"acc on the file's y: {acc:.4f}")
        else:
            p = run.predict_files(path)
            out.append(f"predictions for {path} ({len(p)} image{'s' if len(p) != 1 else ''}):")
            out += _prediction_lines(p, int(args["top"]), int(args["limit"]))
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if any(a in ("-h", "--help", "help") for a in argv):
        print(USAGE + "\n\n" + __doc__.split("\n\n", 1)[1].rstrip())
        return 0
    from nnbasics.errors import NNBasicsError

    try:
        lines = run_eval(parse(argv))
    except (NNBasicsError, ValueError, FileNotFoundError, KeyError, ImportError) as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(f"error: {msg}", file=sys.stderr)
        return 2
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
