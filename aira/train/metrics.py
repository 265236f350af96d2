"""Metrics the harness computes itself: masked accuracy (MAD) and bits per byte (language modelling).

Targets use -100 for positions that carry no answer, as `torch.nn.functional.cross_entropy` does.

Bits per byte follows autoresearch's val_bpb, sum of target nats / (ln 2 * target UTF-8 bytes), with one
fix: a target's bytes come from a table of each token's raw bytes (`bytes_per_token_table`), so a token
that holds part of a multi-byte character counts only the bytes it holds. Decoding each token alone
would turn such a token into U+FFFD (3 bytes) and over-count.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

IGNORE = -100


def masked_correct(logits: torch.Tensor, targets: torch.Tensor) -> tuple[int, int]:
    """(correct, counted) argmax predictions over positions whose target is not -100."""
    mask = targets != IGNORE
    pred = logits.argmax(dim=-1)
    return int((pred[mask] == targets[mask]).sum()), int(mask.sum())


def masked_accuracy(logits: torch.Tensor, targets: torch.Tensor) -> float:
    """Accuracy of argmax(logits) (..., V) against targets (...) where targets != -100.

    A batch with no answer positions scores 0.0 (not NaN), so `accuracy * count` sums stay finite.
    """
    correct, total = masked_correct(logits, targets)
    return correct / total if total else 0.0


def token_nll_sum(logits: torch.Tensor, targets: torch.Tensor) -> float:
    """Summed cross-entropy in nats over targets != -100, computed in float32."""
    return float(F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1),
                                 ignore_index=IGNORE, reduction="sum"))


def _table(bytes_per_token: np.ndarray | torch.Tensor, device: torch.device) -> torch.Tensor:
    if isinstance(bytes_per_token, torch.Tensor):
        return bytes_per_token.to(device=device, dtype=torch.int64)
    return torch.as_tensor(np.asarray(bytes_per_token, dtype=np.int64), device=device)


def count_target_bytes(targets: torch.Tensor, bytes_per_token: np.ndarray | torch.Tensor) -> int:
    """UTF-8 bytes the targets stand for: the sum of each target token's raw byte count (-100 skipped)."""
    mask = targets != IGNORE
    return int(_table(bytes_per_token, targets.device)[targets[mask]].sum())


def mask_zero_byte_targets(targets: torch.Tensor, bytes_per_token: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Targets with special tokens (0 bytes) set to -100, to leave them out of the nats as well."""
    keep = targets != IGNORE
    nbytes = _table(bytes_per_token, targets.device)[targets.clamp(min=0)]
    return torch.where(keep & (nbytes > 0), targets, torch.full_like(targets, IGNORE))


def bits_per_byte(total_nats: float, total_bytes: int) -> float:
    """total_nats / (ln 2 * total_bytes): the tokenizer-independent compression rate of the text."""
    if total_bytes <= 0:
        raise ValueError("bits_per_byte needs a positive byte count")
    return total_nats / (math.log(2) * total_bytes)
