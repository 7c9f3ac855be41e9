"""Whole training steps as CUDA graphs (``TrainConfig.cuda_graph_step``), one graph per kind of step.

The eager fast path is bound by the host: a ResNet-50 step launches about 800 kernels, which cost
more CPU time than the GPU needs to run them (benchmarks/GPU_NOTES.md). Compiling the model with
CUDA graphs removes the model's launches only. Here everything after the batch is captured once,
the model's forward, the mining, the losses, the backward pass and the optimiser updates, and every
later step of the same kind replays that graph.

The batch's gather from the device cache and its augmentation stay eager (a dozen launches) and are
copied into the graph's input buffers before each replay. Their random draws so come from the
run's checkpointed generator, as on the eager path, and a resumed run draws the same batches.

What capture needs, and where this module provides it:
- Adam with ``capturable=True`` and each group's lr held as a device tensor. A float lr would be
  frozen into the graph and the schedule's milestones silently ignored; the schedule's new lr is
  written into the tensor in place (``engine.set_lr``; this module also re-syncs a group whose lr
  something replaced with a float).
- A few eager warm-up steps of each kind first, on a side stream, as torch.cuda.graphs documents:
  cuDNN's autotuner, Adam's state and lazy initialisation run before the capture.
- Steps that read nothing back to the host: the fast path's sync-free losses.
- One process: under DDP the gradient all-reduce would have to be captured as well.
- The step's outputs (the loss terms) live in the graph's memory and the next replay overwrites
  them, so they are cloned before they are returned.
"""
from __future__ import annotations

import typing
import warnings

import torch

from readnet import distributed
from readnet.batches import Batch
from readnet.engine import STEP_KINDS, Engine, run_step, step_kind

WARMUP_STEPS = 3  # eager steps of each kind before its capture (torch.cuda.graphs' whole-network example)


class CudaGraph:
    """One captured step: capture(fn) records fn's kernels without running them, replay() runs them;
    ``outputs`` is what fn returned, in the graph's memory."""

    def __init__(self) -> None:
        self.graph = torch.cuda.CUDAGraph()
        self.outputs: typing.Any = None

    def capture(self, fn: typing.Callable[[], typing.Any]) -> None:
        with torch.cuda.graph(self.graph):
            self.outputs = fn()

    def replay(self) -> None:
        self.graph.replay()


class EagerReplay:
    """CudaGraph's stand-in on a CPU: replay() runs the recorded step again and writes its results
    into the outputs of the first replay, as a graph writes into its own memory. A step that read
    anything but the input buffers would compute on a stale batch and part from the eager run, so
    this checks StepGraphs' bookkeeping where no GPU is at hand (tests, the device check's dry run)."""

    def capture(self, fn: typing.Callable[[], typing.Any]) -> None:
        self.fn, self.outputs = fn, None

    def replay(self) -> None:
        values = self.fn()
        if self.outputs is None:
            self.outputs = values
            return
        for name, value in values.items():
            self.outputs[name].copy_(value)


def check_capturable(engine: Engine) -> None:
    """Raise ValueError when the engine's steps cannot be captured, naming the setting to change."""
    config = engine.config
    if engine.device.type != "cuda":
        raise ValueError(f"cuda_graph_step=True needs a CUDA device, got {engine.device}; set cuda_graph_step=false")
    if not engine.fast:
        raise ValueError("cuda_graph_step=True needs the fast path (its steps read nothing back to the host); "
                         "set fast_path=true")
    if config.cuda_graphs:
        raise ValueError("cuda_graph_step=True captures the whole step, which includes the model that "
                         "cuda_graphs=True would capture on its own: set one of them")
    if distributed.get_world_size() > 1:
        raise ValueError("cuda_graph_step=True runs in one process only (DDP's all-reduce is not captured); "
                         "set cuda_graph_step=false under torchrun")


class StepGraphs:
    """A drop-in for ``engine.train_step``: the first WARMUP_STEPS steps of each kind run eagerly,
    the next one is captured, and every later one replays its graph. ``graph_type`` makes the graph
    objects (CudaGraph; tests pass one that replays eagerly, to check the buffers on a CPU)."""

    def __init__(self, engine: Engine, warmup_steps: int = WARMUP_STEPS,
                 graph_type: typing.Callable[[], typing.Any] = CudaGraph):
        if graph_type is CudaGraph:
            check_capturable(engine)
        self.engine, self.warmup_steps, self.graph_type = engine, warmup_steps, graph_type
        self.eager_steps = {kind: 0 for kind in STEP_KINDS}
        self.graphs: dict[str, typing.Any] = {}
        self.inputs: dict[str, Batch] = {}
        self.stream = torch.cuda.Stream(engine.device) if engine.device.type == "cuda" else None
        self.learning_rates = self._tensor_learning_rates()

    def __call__(self, engine: Engine, batch: Batch, iteration: int) -> dict[str, torch.Tensor]:
        kind = step_kind(engine, iteration)
        self._sync_learning_rates()
        if kind not in self.graphs:
            if self.eager_steps[kind] < self.warmup_steps:
                self.eager_steps[kind] += 1
                return self._warm_up(kind, batch, iteration)
            self._capture(kind, batch, iteration)
        inputs = self.inputs[kind]
        for static, value in zip(_fields(inputs), _fields(batch)):
            static.copy_(value, non_blocking=True)
        graph = self.graphs[kind]
        graph.replay()
        return {name: value.clone() for name, value in graph.outputs.items()}

    def _tensor_learning_rates(self) -> list[tuple[dict, torch.Tensor]]:
        """Every Adam group's lr as a device tensor (capturable=True), which the captured update reads."""
        held = []
        # float32 for CUDA's fused Adam; on a CPU (EagerReplay) Adam reads the lr back as a Python float,
        # and float64 keeps it the schedule's exact value, so replayed steps equal eager ones bit for bit
        dtype = torch.float32 if self.engine.device.type == "cuda" else torch.float64
        for optimizer in self.engine.optimizers.values():
            if not isinstance(optimizer, torch.optim.Adam):
                continue  # the centres' SGD: a constant lr, fine to freeze into the graph
            for group in optimizer.param_groups:
                group["lr"] = torch.tensor(float(group["lr"]), dtype=dtype, device=self.engine.device)
                group["capturable"] = self.engine.device.type == "cuda"
                held.append((group, group["lr"]))
        return held

    def _sync_learning_rates(self) -> None:
        for group, tensor in self.learning_rates:
            if group["lr"] is not tensor:  # replaced by a float (an lr schedule that does not write in place)
                tensor.fill_(float(group["lr"]))
                group["lr"] = tensor

    def _warm_up(self, kind: str, batch: Batch, iteration: int) -> dict[str, torch.Tensor]:
        with warnings.catch_warnings():  # capturable Adam warns when it steps uncaptured; these steps must
            warnings.filterwarnings("ignore", message=".*capturable=True.*")
            if self.stream is None:
                return run_step(self.engine, kind, batch, iteration)
            self.stream.wait_stream(torch.cuda.current_stream(self.engine.device))
            with torch.cuda.stream(self.stream):
                values = run_step(self.engine, kind, batch, iteration)
            torch.cuda.current_stream(self.engine.device).wait_stream(self.stream)
            return values

    def _capture(self, kind: str, batch: Batch, iteration: int) -> None:
        inputs = self.inputs[kind] = Batch(*(value.clone() for value in _fields(batch)))
        graph = self.graphs[kind] = self.graph_type()
        graph.capture(lambda: run_step(self.engine, kind, inputs, iteration))


def _fields(batch: Batch) -> tuple[torch.Tensor, ...]:
    return batch.images, batch.pids, batch.camids, batch.modality


def plain_learning_rates(state_dict: dict) -> dict:
    """An optimiser's or lr schedule's state_dict with float lrs and capturable off, so a checkpoint
    of a captured run resumes anywhere (a captured run makes its tensors again)."""
    def plain(value):
        return float(value) if isinstance(value, torch.Tensor) else value

    state_dict = dict(state_dict)
    if "param_groups" in state_dict:
        state_dict["param_groups"] = [{**group, "lr": plain(group["lr"]),
                                       **({"capturable": False} if "capturable" in group else {})}
                                      for group in state_dict["param_groups"]]
    if "_last_lr" in state_dict:
        state_dict["_last_lr"] = [plain(value) for value in state_dict["_last_lr"]]
    return state_dict
