"""Every test gets its own evaluation cache (aira.train.cache), so no test reads another's results
and none writes into the user's ~/.cache; and no test sees a primitive another test promoted."""

import pytest


@pytest.fixture(autouse=True)
def _own_evaluation_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("AIRA_CACHE", str(tmp_path_factory.mktemp("aira-cache")))


@pytest.fixture(autouse=True)
def _no_promoted_primitives_left_behind():
    yield
    from aira.models.registry import drop_promoted

    drop_promoted()
