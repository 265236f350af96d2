"""One-shot (aira-dojo): a single draft, then done. The baseline scaffold of AIRA-Compose."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from aira.agents.base import Step
from aira.agents.policies._common import SearchPolicy, count_drafts
from aira.agents.types import Node


@dataclass(kw_only=True)
class OneShot(SearchPolicy):
    name = "oneshot"

    def next_step(self, nodes: Sequence[Node], rng: random.Random) -> Step | None:
        return None if count_drafts(nodes) else Step("draft")
