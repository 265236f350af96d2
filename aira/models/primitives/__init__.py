"""Built-in primitives; importing this package registers them (see aira/models/registry.py)."""

from aira.models.primitives import attention, gated_deltanet, gla, mamba2, mlp, moe, swa  # noqa: F401
