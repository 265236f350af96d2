"""Export an aira model for other tools: a Hugging Face model folder (`aira export`, hf.py).

Writing the folder needs only torch (and safetensors, when installed); loading it needs transformers.
`configuration_aira.py` / `modeling_aira.py` are the files copied into the folder: they import
transformers and never aira, so import them only where transformers is installed.
"""

from aira.export.hf import build_for_export, export_model, hf_config

__all__ = ["build_for_export", "export_model", "hf_config"]
