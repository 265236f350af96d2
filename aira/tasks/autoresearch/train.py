"""aira's baseline for the autoresearch task: a small GPT trained for a fixed wall-clock budget.

This is the one file an agent edits. The harness runs it in a sandbox with the settings it chose (preset,
seed, time budget) and scores the model it saves on validation data the script never sees (val_bpb,
lower is better). Keep the interface: `load_run()` first, `run.get_batch(...)` for data, and
`save_model(model, run)` at the end; the model maps ids (B, T) to logits (B, T, vocab).

The model: a GPT with rotary position embeddings, RMSNorm (no weights), RMS-normalised queries and keys
(QK-norm), a ReLU-squared MLP (SwiGLU and GELU as options), untied embedding and head, zero-initialised
output projections. Optimisers: Muon (orthogonalised momentum, Newton-Schulz iteration) for the block
matrices, AdamW for the embedding and the head. The learning rate is constant, then decays linearly to
zero over the last WARMDOWN_FRAC of the time budget. On CUDA: bf16 autocast and torch.compile; on CPU:
plain fp32. The budget clock starts after UNTIMED_STEPS steps, so compilation is not charged.
"""

import math
import resource
import time

import torch
import torch.nn.functional as F
from torch import nn

from aira.tasks.autoresearch.prepare import load_run, print_summary, save_model

run = load_run()
PRESET = run.preset  # "test" (seconds), "cpu" (about a minute), "gpu" (autoresearch's H100 setting)

# ---- hyperparameters: the dials -------------------------------------------------------------------
DEPTH = {"test": 1, "cpu": 2, "gpu": 8}[PRESET]  # the size dial: width follows from depth
ASPECT_RATIO = {"test": 64, "cpu": 64, "gpu": 80}[PRESET]  # model_dim = DEPTH * ASPECT_RATIO, rounded
# up to a multiple of HEAD_DIM; gpu: depth 8, d 640, about 50M parameters (autoresearch's size)
HEAD_DIM = {"test": 32, "cpu": 64, "gpu": 128}[PRESET]
MLP_RATIO = 4
ACTIVATION = "relu2"  # relu2 | swiglu | gelu
TRAIN_SEQ_LEN = {"test": 64, "cpu": 128, "gpu": 2048}[PRESET]
BATCH_SIZE = {"test": 8, "cpu": 16, "gpu": 64}[PRESET]  # sequences per forward pass
TOTAL_BATCH_TOKENS = {"test": 512, "cpu": 2048, "gpu": 2**19}[PRESET]  # per step (gradient accumulation)
OPTIMIZER = "muon"  # muon (Muon for block matrices + AdamW) | adamw (AdamW everywhere)
MATRIX_LR = 0.02  # Muon
ADAMW_MATRIX_LR = 0.003  # block matrices when OPTIMIZER = "adamw"
EMBED_LR = 0.3
UNEMBED_LR = 0.004
WEIGHT_DECAY = 0.0  # AdamW groups
ADAM_BETAS = (0.8, 0.95)
WARMUP_FRAC = 0.0
WARMDOWN_FRAC = 0.4
UNTIMED_STEPS = 3  # steps before the budget clock starts (compilation, allocator warm-up)
REPORT_EVERY_S = 15.0  # a progress line at most this often (the harness relays it while the script runs)
ROPE_BASE = 10000.0


# ---- model ----------------------------------------------------------------------------------------
def norm(x: torch.Tensor) -> torch.Tensor:
    return F.rms_norm(x, (x.size(-1),))


def rotary_tables(seq_len: int, head_dim: int, base: float) -> tuple[torch.Tensor, torch.Tensor]:
    inv = 1.0 / base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
    angles = torch.outer(torch.arange(seq_len, dtype=torch.float32), inv)  # (T, head_dim / 2)
    return angles.cos()[None, :, None, :], angles.sin()[None, :, None, :]  # (1, T, 1, head_dim / 2)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    a, b = x.chunk(2, dim=-1)
    return torch.cat([a * cos - b * sin, a * sin + b * cos], dim=-1).type_as(x)


class Attention(nn.Module):
    def __init__(self, dim: int, n_heads: int):
        super().__init__()
        self.n_heads, self.head_dim = n_heads, dim // n_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.proj = nn.Linear(dim, dim, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        B, T, D = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.n_heads, self.head_dim).unbind(2)
        q, k = apply_rotary(norm(q), cos, sin), apply_rotary(norm(k), cos, sin)  # QK-norm, then RoPE
        y = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                           is_causal=True)
        return self.proj(y.transpose(1, 2).reshape(B, T, D))


class MLP(nn.Module):
    def __init__(self, dim: int, activation: str):
        super().__init__()
        self.activation = activation
        hidden = MLP_RATIO * dim
        if activation == "swiglu":  # same parameter count as the 2-matrix MLP
            hidden = 2 * hidden // 3
            self.gate = nn.Linear(dim, hidden, bias=False)
        self.up = nn.Linear(dim, hidden, bias=False)
        self.down = nn.Linear(hidden, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.up(x)
        if self.activation == "relu2":
            h = F.relu(h).square()
        elif self.activation == "swiglu":
            h = F.silu(self.gate(x)) * h
        else:
            h = F.gelu(h)
        return self.down(h)


class Block(nn.Module):
    def __init__(self, dim: int, n_heads: int):
        super().__init__()
        self.attn = Attention(dim, n_heads)
        self.mlp = MLP(dim, ACTIVATION)

    def forward(self, x, cos, sin):
        x = x + self.attn(norm(x), cos, sin)
        return x + self.mlp(norm(x))


class GPT(nn.Module):
    def __init__(self, vocab_size: int, depth: int, dim: int, n_heads: int, max_seq_len: int):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, dim)
        self.blocks = nn.ModuleList(Block(dim, n_heads) for _ in range(depth))
        self.head = nn.Linear(dim, vocab_size, bias=False)
        cos, sin = rotary_tables(max_seq_len, dim // n_heads, ROPE_BASE)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)
        for name, p in self.named_parameters():
            if name.endswith(("proj.weight", "down.weight")):
                nn.init.zeros_(p)  # each block starts as the identity
            elif p.ndim == 2:
                nn.init.normal_(p, std=0.02 if "embed" not in name else 1.0)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        T = idx.size(1)
        cos, sin = self.cos[:, :T], self.sin[:, :T]
        x = norm(self.embed(idx))
        for block in self.blocks:
            x = block(x, cos, sin)
        return self.head(norm(x)).float()


# ---- optimisers -----------------------------------------------------------------------------------
def orthogonalise(g: torch.Tensor, steps: int = 5) -> torch.Tensor:
    """Approximately U V^T of g's SVD by a quintic Newton-Schulz iteration (Muon's update direction)."""
    a, b, c = 3.4445, -4.7750, 2.0315  # coefficients published with Muon (K. Jordan, 2024)
    x = g.bfloat16() if g.is_cuda else g.float()
    tall = x.size(0) > x.size(1)
    if tall:
        x = x.T
    x = x / (x.norm() + 1e-7)
    for _ in range(steps):
        s = x @ x.T
        x = a * x + (b * s + c * s @ s) @ x
    return (x.T if tall else x).to(g.dtype)


class Muon(torch.optim.Optimizer):
    """SGD with Nesterov momentum whose update is orthogonalised, scaled for the matrix's shape."""

    def __init__(self, params, lr: float, momentum: float = 0.95):
        super().__init__(params, {"lr": lr, "momentum": momentum})

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                buf = self.state[p].setdefault("momentum", torch.zeros_like(p))
                buf.lerp_(p.grad, 1 - group["momentum"])
                update = orthogonalise(p.grad.lerp(buf, group["momentum"]))
                p.add_(update, alpha=-group["lr"] * max(1.0, p.size(0) / p.size(1)) ** 0.5)


def make_optimizers(model: GPT) -> list[torch.optim.Optimizer]:
    matrices = [p for p in model.blocks.parameters() if p.ndim == 2]
    adam_groups = [{"params": [model.embed.weight], "lr": EMBED_LR},
                   {"params": [model.head.weight], "lr": UNEMBED_LR}]
    fused = run.device.type == "cuda"
    if OPTIMIZER == "muon":
        opts = [Muon(matrices, lr=MATRIX_LR)]
    else:
        opts = []
        adam_groups.append({"params": matrices, "lr": ADAMW_MATRIX_LR})
    opts.append(torch.optim.AdamW(adam_groups, betas=ADAM_BETAS, weight_decay=WEIGHT_DECAY, fused=fused))
    for opt in opts:
        for group in opt.param_groups:
            group["base_lr"] = group["lr"]
    return opts


def lr_scale(progress: float) -> float:
    """Learning-rate multiplier at `progress` (fraction of the time budget spent)."""
    if WARMUP_FRAC > 0 and progress < WARMUP_FRAC:
        return progress / WARMUP_FRAC
    if progress > 1 - WARMDOWN_FRAC:
        return max(0.0, (1 - progress) / WARMDOWN_FRAC)
    return 1.0


# ---- training -------------------------------------------------------------------------------------
def main() -> None:
    t_start = time.time()
    device = run.device
    dim = math.ceil(DEPTH * ASPECT_RATIO / HEAD_DIM) * HEAD_DIM
    model = GPT(run.vocab_size, DEPTH, dim, dim // HEAD_DIM, max(TRAIN_SEQ_LEN, run.eval_seq_len)).to(device)
    n_params = sum(p.numel() for p in model.parameters())
    optimizers = make_optimizers(model)
    use_cuda = device.type == "cuda"
    if use_cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
    step_model = torch.compile(model) if use_cuda else model
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_cuda)
    accum = max(1, TOTAL_BATCH_TOKENS // (BATCH_SIZE * TRAIN_SEQ_LEN))

    print(f"model: {n_params / 1e6:.1f}M parameters, depth {DEPTH}, width {dim}; {device.type}"
          f"{', compiling on the first step' if use_cuda else ''}; {run.time_budget_s:g} s budget", flush=True)
    step, trained_s, tokens, loss_value = 0, 0.0, 0, float("nan")
    last_report = time.time()
    while True:
        t0 = time.time()
        progress = min(1.0, trained_s / run.time_budget_s)
        for opt in optimizers:
            for group in opt.param_groups:
                group["lr"] = group["base_lr"] * lr_scale(progress)
        for _ in range(accum):
            x, y = run.get_batch(BATCH_SIZE, TRAIN_SEQ_LEN)
            with autocast:
                logits = step_model(x)
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), y.reshape(-1))
            (loss / accum).backward()
        for opt in optimizers:
            opt.step()
        model.zero_grad(set_to_none=True)
        loss_value = loss.item()  # also synchronises CUDA, so the step time below is real
        if not math.isfinite(loss_value):
            raise SystemExit(f"training diverged at step {step}: loss {loss_value}")
        step += 1
        tokens += accum * BATCH_SIZE * TRAIN_SEQ_LEN
        if step > UNTIMED_STEPS:
            trained_s += time.time() - t0
        if step > UNTIMED_STEPS and trained_s >= run.time_budget_s:
            break
        if time.time() - last_report >= REPORT_EVERY_S or step == UNTIMED_STEPS:
            last_report = time.time()
            print(f"step {step}: loss {loss_value:.4f}, {min(1.0, trained_s / run.time_budget_s):.0%} of the budget, "
                  f"{tokens / 1e6:.2f}M tokens", flush=True)

    save_model(model, run)
    if use_cuda:
        peak_mb = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes
    print_summary(training_seconds=trained_s, total_seconds=time.time() - t_start, peak_memory_mb=peak_mb,
                  num_steps=step, num_params_M=n_params / 1e6, depth=DEPTH, model_dim=dim,
                  total_tokens_M=tokens / 1e6, final_train_loss=loss_value)


if __name__ == "__main__":
    main()
