"""Registers the built-in observers. Each is off until a run names it (``esper run --observer NAME``), and
each needs an optional dependency, checked when a run asks for it (never at import: ``esper plugins``
lists them whether or not TensorBoard or W&B is installed)."""

from esper_core.api import ObserverSpec, hookimpl

from esper_sinks.tensorboard import TensorBoardOptions, make_tensorboard_observer
from esper_sinks.wandb_sink import WandbOptions, make_wandb_observer

ESPER_PLUGIN_API = 1

TENSORBOARD = ObserverSpec(
    name="tensorboard",
    description="Curves as TensorBoard event files in RUN_DIR/tensorboard (needs esper-grow[tensorboard]).",
    factory=make_tensorboard_observer,
    options_type=TensorBoardOptions,
)
WANDB = ObserverSpec(
    name="wandb",
    description="Curves in Weights & Biases, local files in RUN_DIR/wandb (needs esper-grow[wandb]).",
    factory=make_wandb_observer,
    options_type=WandbOptions,
)


@hookimpl
def esper_observers() -> list[ObserverSpec]:
    return [TENSORBOARD, WANDB]
