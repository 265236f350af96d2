"""Data for the evaluators: MAD synthetic tasks, text corpora, tokenizers and token shards.

  mad.py        the six MAD tasks: `make_mad(task, settings, seed)` -> train / val / select tensors
  madlab.py     MAD-lab's own rules for the six tasks (MAD settings `madlab`), used by mad.py
  text.py       offline corpora: `load_corpus("shakespeare" | "pycode" | path)`
  tokenizer.py  byte and byte-level BPE tokenizers with exact per-token bytes
  shards.py     `prepare_text_data(spec)` -> memory-mapped, cached train / val / heldout token splits

Nothing is imported here, so `import aira.data.mad` does not pay for the tokenizer library.
"""
