"""aira: LLM agents that discover neural-network architectures.

The package is layered (see docs/architecture.md): models and data know nothing of agents;
train builds on models and data; agents, tasks, compose and report build on those.
"""

__version__ = "0.1.0"
