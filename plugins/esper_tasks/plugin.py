"""Registers the built-in tasks."""

from esper_core.hookspecs import hookimpl
from esper_core.specs import TaskSpec
from esper_tasks.cifar10 import SPEC as CIFAR10
from esper_tasks.npz import SPEC as NPZ
from esper_tasks.pysource import SPEC as PYSOURCE
from esper_tasks.synthetic import SPEC as SYNTHETIC
from esper_tasks.text import SPEC as TEXT


@hookimpl
def esper_tasks() -> list[TaskSpec]:
    return [SYNTHETIC, CIFAR10, NPZ, PYSOURCE, TEXT]
