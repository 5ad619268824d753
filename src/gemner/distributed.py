"""Data-parallel training over several processes (Hugging Face accelerate sets up the process group).

The one mechanism of the three trainers (recogniser, reranker, grounder). Every trainer cuts each of its
batches (the effective batch of the configuration, as in the paper) into one share per process, and
each share into `accumulate` micro-batches (gradient accumulation); each process computes the loss of
its micro-batches and adds up their gradients, the gradients are averaged over the processes once a
step, and every process takes the same optimizer step. Each micro-batch's loss is weighted by its
part of the whole batch's loss (its size, or its tokens / class weights), so the averaged gradient is
the gradient of the whole batch's loss: N processes x A accumulation steps train the same model as
one process with the same batch (up to float summation order).

Two ways in: `gemner train ... --processes N` spawns N local processes (`run_processes`, gloo on CPU),
and `accelerate launch` / `torchrun` start the processes themselves (`DataParallel.from_env` reads
their `RANK`/`WORLD_SIZE`). Only the main process writes checkpoints, history and progress.
"""

from __future__ import annotations

import math
import os
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import torch

T = TypeVar("T")


@dataclass(frozen=True)
class DataParallel:
    """This process's place among the training processes (rank 0 of 1 when training alone)."""

    rank: int = 0
    world: int = 1

    @classmethod
    def from_env(cls, device: str = "cpu") -> DataParallel:
        """The process group the launcher described in the environment (one process when none)."""
        if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
            return cls()
        from accelerate import PartialState

        state = PartialState(cpu=not str(device).startswith("cuda"))
        return cls(state.process_index, state.num_processes)

    def place(self, device: str) -> str:
        """One GPU per process (`cuda` becomes `cuda:<local rank>`); CPU as it is."""
        if self.world > 1 and device == "cuda":
            return f"cuda:{os.environ.get('LOCAL_RANK', self.rank)}"
        return device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def main_only(self, log: Callable[[str], None]) -> Callable[[str], None]:
        """`log` in the main process; a no-op in the others (one line per message, not N)."""
        return log if self.is_main else _quiet

    def share(self, batch: Sequence[T]) -> list[T]:
        """This process's items of a batch (every process gets a share; the last may be empty)."""
        return list(batch[self.rank::self.world])

    def micro_batches(self, batch: Sequence[T], accumulate: int = 1) -> list[list[T]]:
        """This process's share of a batch cut into at most `accumulate` micro-batches (none when empty)."""
        share = self.share(batch)
        size = math.ceil(len(share) / max(1, accumulate))
        return [share[start:start + size] for start in range(0, len(share), size)] if share else []

    def loss_weight(self, share: int, batch: int) -> float:
        """Scales a share's mean loss so that the gradients averaged over processes are the batch mean's."""
        return share * self.world / batch

    def average_gradients(self, parameters: Sequence[torch.nn.Parameter]) -> None:
        """All-reduce the gradients (one flat buffer; a parameter without a gradient counts as zero)."""
        if self.world == 1:
            return
        import torch.distributed as dist

        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in parameters]
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= self.world
        offset = 0
        for param, grad in zip(parameters, grads, strict=True):
            param.grad = flat[offset:offset + grad.numel()].view_as(grad).clone()
            offset += grad.numel()

    def all_sum(self, values: Sequence[float], device: str | torch.device = "cpu") -> list[float]:
        """The sums of `values` over the processes (a batch's loss, its number of tokens, ...)."""
        if self.world == 1:
            return [float(v) for v in values]
        import torch.distributed as dist

        total = torch.tensor([float(v) for v in values], dtype=torch.float64, device=device)
        dist.all_reduce(total)
        return total.tolist()

    def broadcast_parameters(self, model: torch.nn.Module) -> None:
        """Start every process from the main process's weights."""
        self.broadcast_tensors([*model.parameters(), *model.buffers()])

    def broadcast_tensors(self, tensors: Sequence[torch.Tensor]) -> None:
        """The main process's values of `tensors` (e.g. only the trainable ones of a large model) everywhere."""
        if self.world == 1:
            return
        import torch.distributed as dist

        for tensor in tensors:
            dist.broadcast(tensor.data, src=0)

    def barrier(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()


def _quiet(_message: str) -> None:
    pass


def describe_batch(batch: int, processes: int, accumulate: int, unit: str) -> str:
    """The batch arithmetic a trainer prints at start: effective = processes x accumulation x micro-batch."""
    per = math.ceil(batch / (processes * accumulate))
    exact = "" if per * processes * accumulate == batch else "up to "
    note = " (some processes get no items: lower --processes or --accumulate)" if batch < processes * accumulate else ""
    return (f"effective batch {batch} {unit} = {processes} process(es) x {accumulate} accumulation step(s) x "
            f"{exact}{per} {unit} per micro-batch{note}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _child(rank: int, world: int, port: int, threads: int, fn: Callable[..., Any], args: tuple, kwargs: dict,
           results: Any) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_WORLD_SIZE=str(world))
    torch.set_num_threads(threads)
    result = fn(*args, **kwargs)
    if rank == 0:
        results.put(result)


def run_processes(fn: Callable[..., T], processes: int, *args: Any, **kwargs: Any) -> T:
    """Run `fn(*args, **kwargs)` in `processes` spawned local processes forming one data-parallel group;
    returns the main process's result. One process runs `fn` here, in this process. The CPU threads of
    this process (`torch.get_num_threads()`, `--threads`) are divided among the processes."""
    if processes <= 1:
        return fn(*args, **kwargs)
    import torch.multiprocessing as mp

    context = mp.get_context("spawn")
    results = context.SimpleQueue()
    threads = max(1, torch.get_num_threads() // processes)
    group = mp.start_processes(_child, args=(processes, _free_port(), threads, fn, args, kwargs, results),
                               nprocs=processes, start_method="spawn", join=False)
    received: list[T] = []
    while not group.join(timeout=1):  # raises when a process fails; the result is read before all have ended
        if not received and not results.empty():
            received.append(results.get())
    if not received:
        received.append(results.get())
    return received[0]
