"""Every test gets its own evaluation cache (aira.train.cache), so no test reads another's results
and none writes into the user's ~/.cache."""

import pytest


@pytest.fixture(autouse=True)
def _own_evaluation_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("AIRA_CACHE", str(tmp_path_factory.mktemp("aira-cache")))



@pytest.fixture(autouse=True)
def _promoted_primitives_stay_in_their_test():
    """Every promoted primitive (an X some test registered) is dropped after each test, so a later test's
    unknown code stays unknown whatever ran before it. Built-in and user-registered primitives stay."""
    from aira.models import registry

    yield
    for info in [i for i in registry.all_primitives() if i.origin is not None]:
        registry._BY_CODE.pop(info.code, None)
        registry._BY_NAME.pop(info.name, None)
