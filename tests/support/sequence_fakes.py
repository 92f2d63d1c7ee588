"""The run-loop fakes of ``run_fakes`` for the transformer topology: a toy byte task (windows of a few
lines of Python, judged in bits per byte like ``pysource``), the real ``gpt`` made tiny, the real ``lora``
blueprint and ``linear_add`` style, so run-level invariants run over both topologies. Fast on one thread."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from esper_blends.plugin import esper_blend_styles
from esper_blueprints.plugin import BUILTIN_BLUEPRINTS
from esper_core.records import TaskData, TaskInfo
from esper_core.specs import HostSpec, TaskSpec
from esper_hosts.gpt import GPTOptions, build_gpt
from esper_tasks.bytes_lm import byte_task_data, windows
from esper_tasks.pysource import split_of
from support.run_fakes import RunnerRegistry
from support.topologies import TEXT

SEQUENCE_LENGTH = 6
LORA = next(spec for spec in BUILTIN_BLUEPRINTS if spec.name == "lora")
LINEAR_ADD = next(spec for spec in esper_blend_styles() if spec.name == "linear_add")


class ToyBytesTask:
    """Next-byte prediction on ``TEXT``: the same data for every seed (the run's generators pick batches)."""

    def __init__(self, options: Any = None) -> None:
        self.options = options

    def available(self, data_dir: Any) -> bool:
        return True

    def load(self, data_dir: Any, device: Any, seed: int) -> TaskData:
        splits = {"train": windows([TEXT] * 4, SEQUENCE_LENGTH, 1 << 20), "val": windows([TEXT], SEQUENCE_LENGTH, 1 << 20),
                  "test": windows([TEXT[::-1]], SEQUENCE_LENGTH, 1 << 20)}
        return byte_task_data("toy_bytes", splits, SEQUENCE_LENGTH, torch.device(device))


def _tiny_gpt(options: Any, info: TaskInfo) -> torch.nn.Module:
    return build_gpt(GPTOptions(width=8, depth=2, heads=2, mlp_ratio=1, context=SEQUENCE_LENGTH), info)


BYTES_TASK = TaskSpec(
    name="toy_bytes", description="toy byte task", factory=ToyBytesTask, topologies=frozenset({"transformer"})
)
GPT_HOST = HostSpec(name="toy_gpt", description="tiny gpt", factory=_tiny_gpt, topology="transformer")


class SequenceRunnerRegistry(RunnerRegistry):
    """``RunnerRegistry`` with the byte task, the tiny gpt, ``lora`` and ``linear_add`` (``add`` of the CNN
    fakes shapes a per-sample alpha for images only)."""

    def __init__(self, policies: dict[str, Any]) -> None:
        super().__init__(policies, blueprints={LORA.name: LORA})
        self._specs.update(
            task={BYTES_TASK.name: BYTES_TASK}, host={GPT_HOST.name: GPT_HOST}, blend_style={LINEAR_ADD.name: LINEAR_ADD}
        )


def tiny_python_tree(root: Path) -> Path:
    """A few small .py files, at least one in each of pysource's train/validation/test splits (a task root
    that a real `--task pysource` run can read in a test)."""
    root.mkdir()
    wanted, index = {"train": 2, "val": 1, "test": 1}, 0
    while any(wanted.values()):
        name = f"module_{index}.py"
        index += 1
        if wanted[split_of(name)]:
            wanted[split_of(name)] -= 1
            (root / name).write_text(f"def f{index}(a, b):\n    return a + b * {index}\n" * 8)
    return root
