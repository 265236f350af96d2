"""Fixtures of the model tests."""

import importlib.util
from pathlib import Path

import pytest


@pytest.fixture
def fla_reference():
    """fla_reference(module, name): a plain-PyTorch reference of flash-linear-attention (fla/ops/<module>/naive.py),
    loaded from its file, since importing the `fla` package needs Triton and its naive references do not."""
    spec = importlib.util.find_spec("fla")
    if spec is None:
        pytest.skip("flash-linear-attention (fla-core) is not installed")

    def load(module: str, name: str):
        path = Path(spec.submodule_search_locations[0]) / "ops" / module / "naive.py"
        mod_spec = importlib.util.spec_from_file_location(f"fla_naive_{module}", path)
        mod = importlib.util.module_from_spec(mod_spec)
        mod_spec.loader.exec_module(mod)
        return getattr(mod, name)

    return load
