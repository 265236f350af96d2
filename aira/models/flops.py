"""FLOPs of a module as torch's counter sees them, with the formulas it lacks.

`torch.utils.flop_counter.FlopCounterMode` counts matmuls, convolutions and attention kernels. Two gaps
are filled per use (passed as its `custom_mapping`, so other users of the counter are unaffected):
FFTs, counted as 5 N log2 N per length-N complex transform, and SDPA's CPU kernel, which the counter
does not know. Elementwise work is not counted, as in every primitive's own formula.
Used by LRA's contract checks and by promoted (agent-written) Compose primitives, whose parameter and
FLOP counts are measured rather than stated.
"""

from __future__ import annotations

import math

import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count


def _fft_flops(n: int) -> float:
    return 5.0 * n * math.log2(max(2, n))


def _fft_formula(x_shape, *args, out_shape=None, **kwargs) -> int:
    # Complex FFT cost over the transformed dims, counted as 5 N log2 N per length-N transform.
    dims = args[0] if args else kwargs.get("dim", [-1])
    numel = math.prod(x_shape)
    total = 0.0
    for d in dims:
        n = max(x_shape[d], out_shape[d] if out_shape is not None else 0)
        total += (numel / x_shape[d]) * _fft_flops(n)
    return int(total)


def _cpu_sdpa_formula(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query_shape, key_shape, value_shape)


def extra_formulas() -> dict:
    """FLOP formulas the counter lacks, for `FlopCounterMode(custom_mapping=...)`.

    Without them, FFT mixers and SDPA on CPU (its own kernel, unknown to the counter) would look free.
    """
    table = {}
    for names, formula in ((("_fft_r2c", "_fft_c2r", "_fft_c2c"), _fft_formula),
                           (("_scaled_dot_product_flash_attention_for_cpu",), _cpu_sdpa_formula)):
        for name in names:
            op = getattr(torch.ops.aten, name, None)
            if op is not None:
                table[op] = formula
    return table


def counted_flops(fn, *args) -> float:
    """Forward FLOPs of `fn(*args)` as the counter (with `extra_formulas`) sees them."""
    with torch.no_grad(), FlopCounterMode(display=False, custom_mapping=extra_formulas()) as counter:
        fn(*args)
    return float(counter.get_total_flops())
