"""Many small models trained as one: the seeds of a candidate, the tasks of a MAD proxy, several candidates.

A proxy model is small, so on a GPU one training step is mostly kernel launches and Python: K models
stepped one after the other pay that K times. Here K models of the same width and depth step together:
- every model is built exactly as `trainer._train_one` builds it (same seed, same init, same batches from
  its own generator), then its parameters are stacked along a new leading axis, per *segment*: the
  embedding and the output head per vocabulary size, each layer position per primitive code, so a mix
  of patterns (and of MAD tasks with different vocabularies) still stacks;
- one step runs each segment once per group with `torch.func.vmap` over that group's stacked
  parameters (any registered primitive works, plug-ins included), sums the K losses and steps one AdamW
  over the stacked tensors: the gradient of a sum is each model's own gradient, AdamW is elementwise, and
  gradient clipping is computed per model, so every model follows its own trajectory; a layer's
  auxiliary loss (the mixture of experts' load balancing, aira/models/block.py) joins its model's loss
  as HybridLM adds it in training, and a MoE layer runs its dense form under vmap (no dispatch);
- the trained slices are copied back into each model, which is then scored by the same code as the
  single path (`trainer._score`), so the results (`TrainResult`) are the same, field for field.
It is the single path's computation, not a copy of its numbers: batched matrix products round
differently, so losses and weights agree with training each model alone to float tolerance (the tests
state it), not bit for bit. On CPU, attention runs through SDPA's math kernel here (vmap has no batching
rule for the CPU flash kernel).

Only step and token budgets batch (every model stops at the same step); a time budget, torch.compile or
settings that differ in anything but pattern and seed go through the single path (`batchable` says why).
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import asdict

import torch
import torch.nn.functional as F
from torch.func import functional_call, stack_module_state, vmap
from torch.nn.attention import SDPBackend, sdpa_kernel

from aira.train.result import TrainResult
from aira.train.trainer import (
    SYNC_EVERY,
    SourceRun,
    TrainConfig,
    _assemble,
    _autocast,
    _curve_point,
    _model_config,
    _peak_mem_mb,
    _score,
    _setup,
    lr_factor,
    make_optimizer,
    to_device,
)

_FREE = ("pattern", "seed", "progress", "threads")  # what may differ between configs trained together


def batchable(cfgs: list[TrainConfig]) -> str | None:
    """None when the configs can train together, else why not."""
    from aira.models import parse_pattern
    from aira.train.budget import parse_budget

    if not cfgs:
        return "no configs"
    first = {k: v for k, v in asdict(cfgs[0]).items() if k not in _FREE}
    for c in cfgs[1:]:
        other = {k: v for k, v in asdict(c).items() if k not in _FREE}
        diff = sorted(k for k in first if first[k] != other[k])
        if diff:
            return f"the configs differ in {', '.join(diff)}"
    if parse_budget(cfgs[0].budget).kind == "seconds":
        return "a time budget: each model would stop at its own step"
    if cfgs[0].compile:
        return "torch.compile"
    if len({len(parse_pattern(c.pattern)) for c in cfgs}) > 1:
        return "the patterns have different depths"
    return None


def train_many(cfgs: list[TrainConfig], *, log=lambda *_: None, on_models=None) -> list[TrainResult]:
    """Train every config's models together (`batchable` must hold); one result per config, as `trainer.train`
    returns it, with `batched` set. `on_models({(config index, source index): trained model})`, if given,
    sees the trained models (tests compare their weights)."""
    why = batchable(cfgs)
    if why is not None:
        raise ValueError(f"cannot train these configs together: {why}")
    t0 = time.time()
    setups = [_setup(cfgs[0])]
    setups += [_setup(c, sources=setups[0].sources) for c in cfgs[1:]]  # the data is the same for all
    sources = setups[0].sources
    members = [(ci, si) for ci in range(len(cfgs)) for si in range(len(sources))]
    runs: dict[tuple[int, int], SourceRun] = {}
    # models of one stack share a sequence length (their activations stack); MAD tasks with settings of
    # their own may not, so those form stacks of their own
    by_len: dict[int, list[tuple[int, int]]] = {}
    for m in members:
        by_len.setdefault(sources[m[1]].seq_len, []).append(m)
    for group in by_len.values():
        group_runs, models = _train_stack(cfgs, setups, group, log)
        runs.update(group_runs)
        if on_models is not None:
            on_models(models)
    wall = time.time() - t0
    results = [_assemble(c, setups[ci], [runs[(ci, si)] for si in range(len(sources))], wall)
               for ci, c in enumerate(cfgs)]
    for r in results:
        r.batched = len(members)  # models trained as one, this one included
    return results


class _Segment:
    """One group of a segment: the members that share its parameter shapes, their stacked parameters."""

    def __init__(self, modules: list[torch.nn.Module], members: list[int], device):
        self.members = members
        self.base = modules[0]
        params, buffers = stack_module_state(modules)
        self.params = {k: v.detach().to(device).requires_grad_() for k, v in params.items()}
        self.buffers = {k: v.to(device) for k, v in buffers.items()}
        self.modules = modules

    def write_back(self) -> None:
        with torch.no_grad():
            for j, module in enumerate(self.modules):
                for name, p in module.named_parameters():
                    p.copy_(self.params[name][j])


def _train_stack(cfgs, setups, members: list[tuple[int, int]], log) -> tuple[dict, dict]:
    from aira.models import build_model

    cfg, setup = cfgs[0], setups[0]
    preset, device, budget, sources = setup.preset, setup.device, setup.part_budget, setup.sources
    K = len(members)
    models, gens = [], []
    for ci, si in members:  # exactly as trainer._train_one seeds and builds each model
        seed = cfgs[ci].seed + 1000 * si
        torch.manual_seed(seed)
        gens.append(torch.Generator().manual_seed(seed))
        mcfg = _model_config(preset, cfg, sources[si].vocab_size, sources[si].seq_len)
        models.append(build_model("".join(setups[ci].codes), mcfg).to(device))
    tied = models[0].cfg.tie_embeddings
    n_layers = len(models[0].blocks)

    def groups(key) -> dict:
        out: dict = {}
        for k in range(K):
            out.setdefault(key(k), []).append(k)
        return out

    vocab_groups = groups(lambda k: sources[members[k][1]].vocab_size)
    embeds = [_Segment([models[k].embed for k in ks], ks, device) for ks in vocab_groups.values()]
    heads = [] if tied else [_Segment([models[k].lm_head for k in ks], ks, device) for ks in vocab_groups.values()]
    norms = _Segment([m.norm for m in models], list(range(K)), device)
    layers = [[_Segment([models[k].blocks[i] for k in ks], ks, device)
               for ks in groups(lambda k, i=i: models[k].codes[i]).values()] for i in range(n_layers)]
    segments = [*embeds, *heads, norms, *(s for layer in layers for s in layer)]

    lr = cfg.lr if cfg.lr is not None else preset.lr
    batch_size = cfg.batch_size or preset.batch_size
    # one optimizer over the stacked tensors, decay as the single path decides it (a model's own tensor
    # has one dimension fewer than its stack)
    opt = make_optimizer([(p, p.dim() - 1) for seg in segments for p in seg.params.values()], preset, lr, device)
    autocast = _autocast(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    def forward(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """x, y (K, B, L) -> the K losses."""
        h = _run_groups(embeds, lambda seg, xs: vmap(lambda p, t: F.embedding(t, p["weight"]))(seg.params, xs), x)
        aux = []  # (members, their auxiliary losses) of layers whose mixer returns one (block.py)

        def layer_step(seg, hs):
            if not seg.base.has_aux:
                return vmap(lambda p, b, t: functional_call(seg.base, (p, b), (t,))[0])(seg.params, seg.buffers, hs)
            out, a = vmap(lambda p, b, t: functional_call(seg.base, (p, b), (t,)))(seg.params, seg.buffers, hs)
            aux.append((seg.members, a))
            return out

        for layer in layers:
            h = _run_groups(layer, layer_step, h)
        h = vmap(lambda p, t: F.rms_norm(t, (t.shape[-1],), p["weight"], norms.base.eps))(norms.params, h)
        out = heads if heads else embeds

        def head_loss(seg, pair):
            hs, ys = pair
            return vmap(lambda p, t, yy: F.cross_entropy((t @ p["weight"].T).float().flatten(0, 1), yy.flatten(),
                                                         ignore_index=-100))(seg.params, hs, ys)
        losses = _run_groups(out, head_loss, (h, y))
        for ks, a in aux:  # as HybridLM.forward adds them in training mode
            losses = losses.index_add(0, torch.tensor(ks, device=losses.device), a.to(losses.dtype))
        return losses

    curve_val = [[] for _ in range(K)]
    curve_select = [[] for _ in range(K)]
    status = ["ok"] * K
    error = [""] * K
    loss_vals = [float("nan")] * K
    steps = tokens = 0
    live = torch.ones(K, dtype=torch.bool)
    t_start = time.time()

    def _check(values: torch.Tensor, step: int, how: str) -> None:
        for k, v in enumerate(values.float().cpu().tolist()):
            if live[k]:
                loss_vals[k] = v
                if not math.isfinite(v):
                    status[k], error[k] = "diverged", f"loss became {v} {how} step {step}"
                    live[k] = False

    def math_sdpa():
        return sdpa_kernel(SDPBackend.MATH) if device.type == "cpu" else contextlib.nullcontext()

    while True:
        progress = budget.progress(seconds=time.time() - t_start, steps=steps, tokens=tokens)
        if progress >= 1.0 or not live.any():
            break
        if cfg.curve_points > 1 and progress >= (len(curve_val[0]) + 1) / cfg.curve_points:
            for seg in segments:
                seg.write_back()
            for k in range(K):
                _curve_point(cfg, models[k], sources[members[k][1]], device, autocast, curve_val[k], curve_select[k])
        for group in opt.param_groups:
            group["lr"] = lr * lr_factor(progress, cfg.schedule, cfg.warmup_frac, cfg.min_lr_frac)
        batches = [sources[si].batch(batch_size, gens[k]) for k, (_, si) in enumerate(members)]
        x, y = to_device(torch.stack([b[0] for b in batches]), torch.stack([b[1] for b in batches]), device=device)
        with autocast, math_sdpa():
            losses = forward(x, y)
        last = losses.detach()
        if device.type != "cuda" or steps % SYNC_EVERY == 0:
            _check(last, steps, "at")
        if not live.any():
            break
        opt.zero_grad(set_to_none=True)
        losses[live.to(losses.device)].sum().backward()
        if preset.grad_clip:
            _clip_per_model(segments, K, preset.grad_clip, device)
        opt.step()
        steps += 1
        tokens += x[0].numel()
    if device.type == "cuda" and steps:
        _check(last, steps - 1, "by")
    train_seconds = time.time() - t_start
    for seg in segments:
        seg.write_back()
    out = {}
    for k, m in enumerate(members):
        val = select = {}
        if status[k] == "ok":
            status[k], error[k], val, select = _score(cfg, models[k], sources[m[1]], device, autocast,
                                                      curve_val[k], curve_select[k])
        out[m] = SourceRun(status=status[k], error=error[k], steps=steps, tokens=tokens,
                           train_seconds=train_seconds / K, compile_s=0.0,
                           val=val, select=select, peak_mem_mb=_peak_mem_mb(device))
    return out, dict(zip(members, models))


def _run_groups(segs: list[_Segment], fn, inputs):
    """Apply `fn(segment, its members' slice of inputs)` per group and put the outputs back in member order."""
    parts, order = [], []
    for seg in segs:
        idx = torch.tensor(seg.members, device=_first(inputs).device)
        sliced = tuple(t.index_select(0, idx) for t in inputs) if isinstance(inputs, tuple) else \
            inputs.index_select(0, idx)
        parts.append(fn(seg, sliced))
        order += seg.members
    out = torch.cat(parts) if len(parts) > 1 else parts[0]
    if order != sorted(order):
        inverse = torch.empty(len(order), dtype=torch.long)
        inverse[torch.tensor(order)] = torch.arange(len(order))
        out = out.index_select(0, inverse.to(out.device))
    return out


def _first(inputs):
    return inputs[0] if isinstance(inputs, tuple) else inputs


def _clip_per_model(segments: list[_Segment], K: int, max_norm: float, device) -> None:
    """`clip_grad_norm_` for each model on its own: the norm over that model's slices of every stack."""
    sq = torch.zeros(K, device=device, dtype=torch.float32)
    for seg in segments:
        idx = torch.tensor(seg.members, device=device)
        for p in seg.params.values():
            if p.grad is not None:
                sq.index_add_(0, idx, p.grad.detach().float().pow(2).flatten(1).sum(1))
    coef = (max_norm / (sq.sqrt() + 1e-6)).clamp(max=1.0)
    for seg in segments:
        c = coef[torch.tensor(seg.members, device=device)]
        for p in seg.params.values():
            if p.grad is not None:
                p.grad.mul_(c.view(-1, *([1] * (p.dim() - 1))).to(p.grad.dtype))
