"""The resumable state of an ITM fine-tuning run: `<output>/last/` (model, optimizer, schedule, position).

Written by the main process only, atomically (into `last.tmp/`, then swapped into place), every
`save_every_steps` optimizer steps, at the end, and when the run is interrupted. The batch order is
drawn from the seed, so the position (batches consumed) is all a resumed run needs to continue on the
same batches with the same weights.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, load_model, save_file, save_model

from ..data.issues import DataError

STATE_DIR = "last"
STATE_FILE = "trainer_state.json"
MODEL_FILE = "model.safetensors"
OPTIMIZER_FILE = "optimizer.safetensors"
UNCHANGING = ("threads", "accumulate", "save_every_steps")  # a resumed run may change these: same training


def save_matcher_state(folder: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                       scheduler: Any, progress: dict[str, Any]) -> None:
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_model(model, str(tmp / MODEL_FILE))
    state = optimizer.state_dict()
    save_file({f"{index}.{key}": torch.as_tensor(value).detach().cpu().contiguous()
               for index, slots in state["state"].items() for key, value in slots.items()},
              str(tmp / OPTIMIZER_FILE))
    (tmp / STATE_FILE).write_text(json.dumps({**progress, "param_groups": state["param_groups"],
                                              "scheduler": scheduler.state_dict()}))
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)


def load_matcher_state(folder: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                       scheduler: Any, settings: dict[str, Any]) -> dict[str, Any] | None:
    """Restore a run's state in place and return its progress; None when `folder` holds none. A state of
    a run with other training settings is refused (continuing it would mix two recipes)."""
    if not (folder / STATE_FILE).is_file():
        return None
    progress = json.loads((folder / STATE_FILE).read_text())
    stored = {k: v for k, v in progress.get("settings", {}).items() if k not in UNCHANGING}
    if stored != {k: v for k, v in settings.items() if k not in UNCHANGING}:
        raise DataError(f"{folder} holds a grounder run with other training settings ({stored}); rerun it with "
                        "those, or choose another --output")
    load_model(model, str(folder / MODEL_FILE), device=str(next(model.parameters()).device))
    tensors: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in load_file(str(folder / OPTIMIZER_FILE)).items():
        index, key = name.split(".", 1)
        tensors.setdefault(int(index), {})[key] = value
    for group in progress["param_groups"]:
        group["betas"] = tuple(group.get("betas", (0.9, 0.999)))
    optimizer.load_state_dict({"state": tensors, "param_groups": progress.pop("param_groups")})
    scheduler.load_state_dict(progress.pop("scheduler"))
    return progress
