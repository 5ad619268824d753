"""gemner: fine-grained multimodal named entity recognition and grounding (GEM)."""

import os as _os
import warnings as _warnings

__version__ = "0.1.0"

# Offline-first: unless the user allows downloads, the Hugging Face libraries must not reach the hub
# (transformers otherwise retries it for ~20 s before reporting a missing file). Set before they load.
if _os.environ.get("GEMNER_ALLOW_DOWNLOAD", "") not in ("1", "true", "yes"):
    _os.environ.setdefault("HF_HUB_OFFLINE", "1")

# transformers itself calls its own deprecated `is_gradient_checkpointing` when peft wraps a model:
# nothing a user of gemner can act on, printed on every load otherwise.
_warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)


def __getattr__(name: str):
    # `from gemner import GEM` without importing torch and transformers at `import gemner`.
    if name == "GEM":
        from .pipeline.gem import GEM

        return GEM
    raise AttributeError(f"module 'gemner' has no attribute {name!r}")
