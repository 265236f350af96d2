"""The promoted mechanisms of an exported aira model, by layer code: none in this copy.

The exporter writes this file into every model folder. For a pattern with promoted mechanisms (an LRA
`attention.py` made a Compose primitive, `aira compose run --primitive X=...`) it writes instead one
relative import per code of the mechanism's source, copied verbatim beside it as `aira_mechanism_<code>.py`,
and this table names each one's `Attention` class. The imports are static on purpose: transformers copies
a remote-code model's relative imports (recursively) into its module cache, local folder or Hub alike.
"""

MECHANISMS: dict[str, type] = {}
