"""Train and score one `attention.py` on one LRA task: the frozen evaluator of AIRA-Design.

    evaluate_attention("attention.py", "lra-listops", preset="cpu", seed=0) -> dict

Returns a dict accepted by `aira.agents.types.Result.from_dict`: status (ok | invalid | diverged |
crashed), metric = validation accuracy (the search split the agent sees), selection_metric = test
accuracy (computed here from predictions against labels the harness holds; never shown to the agent),
params, flops, seconds, error, plus a few descriptive keys. Contract violations and bad settings are
"invalid" with one line for the debug operator; other errors in the agent's code are "crashed".

Sandboxed runs (aira.tasks.lra.task) train with `evaluate_attention(..., split_dir=dir, export=path)`,
which saves the trained weights, on splits that hold no validation or test rows at all; a second
sandboxed process runs `predict_exported` on the held-out inputs alone, and the harness compares its
predictions with labels it kept. `hold_out` / `score_test` are the older single-process form (the test
labels kept out, the inputs in): fine for a trusted file, not for an agent's.
"""

from __future__ import annotations

import math
import time
import traceback

import torch

from pathlib import Path

from aira.data.lra import LraData, Split, load_lra, load_saved
from aira.errors import UsageError
from aira.tasks.lra.contract import check_attention, validate_settings
from aira.tasks.lra.model import ContractError, LraClassifier, load_attention, loss_fn
from aira.tasks.lra.presets import LraPreset, Settings, get_preset

REPORT_EVERY_S = 15.0  # a progress line at most this often while training (relayed by `aira design eval`)


def _device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _trim(*xs: torch.Tensor) -> list[torch.Tensor]:
    """Cut a batch to its longest non-pad row (positions stay absolute, so results are unchanged)."""
    width = max(int((x != 0).any(0).nonzero().max().item()) + 1 if (x != 0).any() else 1 for x in xs)
    return [x[:, :width] for x in xs]


def _batch(split: Split, idx: torch.Tensor, device) -> tuple[torch.Tensor, torch.Tensor | None]:
    xs = [split.x[idx]] + ([split.x2[idx]] if split.x2 is not None else [])
    xs = [t.to(device, non_blocking=True).long() for t in _trim(*xs)]
    return xs[0], (xs[1] if len(xs) > 1 else None)


def _autocast(device: torch.device):
    return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast(
        "cpu", enabled=False)


@torch.no_grad()
def predict(model: LraClassifier, split: Split, *, batch_size: int = 256) -> torch.Tensor:
    """Predicted classes (N,) for a split; needs no labels."""
    device = next(model.parameters()).device
    model.eval()
    out = []
    for start in range(0, len(split), batch_size):
        idx = torch.arange(start, min(start + batch_size, len(split)))
        x, x2 = _batch(split, idx, device)
        with _autocast(device):
            out.append(model(x, x2).argmax(-1).cpu())
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.long)


def accuracy(pred: torch.Tensor, labels: torch.Tensor) -> float:
    if pred.shape != labels.shape:
        raise ValueError(f"predictions {tuple(pred.shape)} do not match labels {tuple(labels.shape)}")
    return float((pred == labels).float().mean().item()) if len(labels) else float("nan")


def build_model(cls, data: LraData, preset: LraPreset, s: Settings) -> LraClassifier:
    return LraClassifier(cls, n_classes=data.n_classes, pair=data.pair, vocab_size=data.vocab_size,
                         max_len=data.max_len, d_model=s.d_model, n_layers=s.n_layers, n_heads=s.n_heads,
                         mlp_dim=max(1, round(preset.mlp_ratio * s.d_model)), dropout=s.dropout,
                         attention_kwargs=s.attention_kwargs)


def train(model: LraClassifier, data: LraData, preset: LraPreset, s: Settings, seed: int) -> float:
    """AdamW, linear warm-up then cosine decay, gradient clipping; returns the final training loss."""
    device = next(model.parameters()).device
    # Weight decay on matrices only; embeddings, norms and biases are left alone.
    def decays(name: str, p: torch.Tensor) -> bool:
        return p.ndim >= 2 and "tok" not in name and "pos" not in name

    decay = [p for n, p in model.named_parameters() if decays(n, p)]
    no_decay = [p for n, p in model.named_parameters() if not decays(n, p)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": s.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=s.lr, betas=(0.9, 0.98))

    def lr_at(step: int) -> float:
        if step < preset.warmup:
            return (step + 1) / preset.warmup
        frac = (step - preset.warmup) / max(1, preset.steps - preset.warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, frac)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    gen = torch.Generator().manual_seed(seed + 7)
    n, loss_value = len(data.train), float("nan")
    perm, pos = torch.randperm(n, generator=gen), 0
    model.train()
    last_report = time.monotonic()
    for step in range(preset.steps):
        if pos + s.batch_size > n:
            perm, pos = torch.randperm(n, generator=gen), 0
        idx = perm[pos: pos + s.batch_size]
        pos += s.batch_size
        x, x2 = _batch(data.train, idx, device)
        with _autocast(device):
            loss = loss_fn(model(x, x2), data.train.y[idx].to(device))
        if not torch.isfinite(loss):
            raise FloatingPointError(f"training loss became {loss.item()}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), preset.grad_clip)
        opt.step()
        sched.step()
        loss_value = float(loss.item())
        if time.monotonic() - last_report >= REPORT_EVERY_S:  # the harness relays it while this runs
            last_report = time.monotonic()
            print(f"step {step + 1}/{preset.steps}: loss {loss_value:.4f}", flush=True)
    return loss_value


def hold_out(task: str, dir: str | Path, *, preset: str = "cpu", seed: int = 0,
             data_dir: str | None = None) -> torch.Tensor:
    """Harness side: write the task's splits to `dir` without test labels; return those labels."""
    data = load_lra(task, data_dir=data_dir, preset=get_preset(task, preset).data_preset, seed=seed)
    data.save_split(dir, include_labels=False)
    return data.test.y.clone()


def score_test(result: dict, labels: torch.Tensor) -> dict:
    """Harness side: turn a sandboxed result's `test_predictions` into the selection metric."""
    out = dict(result)
    preds = out.pop("test_predictions", None)
    if out.get("status") == "ok":
        if preds is None or len(preds) != len(labels):
            return out | {"status": "crashed", "error": "test predictions missing or of the wrong length"}
        acc = accuracy(torch.as_tensor(preds, dtype=torch.long), labels)
        out |= {"selection_metric": acc, "test_accuracy": acc}
    return out


def predict_exported(file: str, weights: str, inputs_dir: str, task: str, *, preset: str = "cpu",
                     seed: int = 0, settings: dict | None = None) -> list[int]:
    """Predicted classes for the rows of `inputs_dir`'s test split (saved without labels), by `file`'s
    model with the weights `evaluate_attention(..., export=weights)` saved. The model is built as in
    training (same seed, so anything drawn at construction and not in the state dict is the same), then
    the weights replace its parameters and buffers, all of them (strict)."""
    p = get_preset(task, preset)
    s = validate_settings(settings, p)
    cls = load_attention(file)
    data = load_saved(inputs_dir)
    if data.task != task:
        raise UsageError(f"{inputs_dir} holds {data.task}, not {task}")
    torch.manual_seed(seed)
    model = build_model(cls, data, p, s).to(_device())
    model.load_state_dict(torch.load(weights, map_location=_device(), weights_only=True), strict=True)
    return predict(model, data.test, batch_size=p.eval_batch_size).tolist()


def evaluate_attention(file: str, task: str, *, preset: str = "cpu", seed: int = 0,
                       data_dir: str | None = None, settings: dict | str | None = None,
                       split_dir: str | None = None, export: str | None = None) -> dict:
    """Train `file`'s Attention on `task` and score it (see the module docstring).

    split_dir: read the splits written by `hold_out` instead of loading the task; when they hold no
    test labels, the result carries `test_predictions` for `score_test`.
    export: save the trained model's state dict there (for `predict_exported`).
    """
    t0, c0 = time.time(), time.process_time()
    p = get_preset(task, preset)  # harness input: a bad name raises UsageError, not a result
    result = {"status": "crashed", "metric": None, "selection_metric": None, "error": "", "task": task,
              "preset": preset, "seed": seed}
    try:
        s = validate_settings(settings, p)
        cls = load_attention(file)
        if split_dir is not None:
            data = load_saved(split_dir)
            if data.task != task:
                raise ContractError(f"split_dir holds {data.task}, not {task}")
        else:
            data = load_lra(task, data_dir=data_dir, preset=p.data_preset, seed=seed)
        result |= {"standin": data.standin, "source": data.source}
        report = check_attention(cls, d_model=s.d_model, n_heads=s.n_heads, max_len=data.max_len,
                                 attention_kwargs=s.attention_kwargs, max_params=p.max_attention_params,
                                 max_flops_per_token=p.max_attention_flops_per_token, seed=seed)
        result |= {"attention_params": report.params, "flops": report.flops_per_token * s.n_layers,
                   "flops_note": "attention forward FLOPs per token at max_len, all layers"}
        report.raise_if_failed()
        torch.manual_seed(seed)
        model = build_model(cls, data, p, s).to(_device())
        result["params"] = sum(q.numel() for q in model.parameters())
        result["train_loss"] = train(model, data, p, s, seed)
        if export is not None:
            torch.save(model.state_dict(), export)
        val_acc = accuracy(predict(model, data.val.without_labels(), batch_size=p.eval_batch_size),
                           data.val.y)
        test_pred = predict(model, data.test.without_labels(), batch_size=p.eval_batch_size)
        if data.test.y is None:
            test_acc, result["test_predictions"] = None, test_pred.tolist()
        else:
            test_acc = accuracy(test_pred, data.test.y)
        result |= {"status": "ok", "metric": val_acc, "selection_metric": test_acc,
                   "val_accuracy": val_acc, "test_accuracy": test_acc, "steps": p.steps,
                   "settings": {k: getattr(s, k) for k in s.__dataclass_fields__}}
    except ContractError as e:
        result |= {"status": "invalid", "error": str(e)}
    except UsageError:
        raise  # the harness's own input (task, data_dir, split_dir) is wrong: not the agent's fault
    except FloatingPointError as e:
        result |= {"status": "diverged", "error": str(e)}
    except Exception as e:  # the agent's code failed while training: keep the last frames for debugging
        tb = traceback.format_exception(type(e), e, e.__traceback__)
        result |= {"status": "crashed", "error": f"{type(e).__name__}: {e}",
                   "traceback": "".join(tb[-3:])[-2000:]}
    result["seconds"] = time.time() - t0
    result["cpu_seconds"] = time.process_time() - c0  # this process's CPU time: robust to a busy machine
    return result
