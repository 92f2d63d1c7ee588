"""Small stand-ins for the run-loop tests: a tiny host, seeds (one that turns the loss non-finite once
blended), an additive blend, a learnable toy task and a minimal registry. Fast on one CPU thread."""

from __future__ import annotations

from typing import Any

import attrs
import torch
from torch import nn

from esper_core.data import CropFlip
from esper_core.ops import Op
from esper_core.records import PolicyOutput, RewardInputs, SlotPoint, TaskData, TaskInfo
from esper_core.specs import BlendStyleSpec, BlueprintSpec, HostSpec, NoOptions, PolicySpec, RewardSpec, TaskSpec
from esper_policies.random_policy import SPEC as RANDOM, RandomPolicy


class ToyHost(nn.Module):
    topology = "cnn"

    def __init__(self, options: Any, info: TaskInfo) -> None:
        super().__init__()
        width = 6
        self.stem = nn.Sequential(nn.Conv2d(info.in_channels, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU())
        self.body = nn.Sequential(nn.Conv2d(width, width, 3, padding=1, stride=2), nn.ReLU())
        self.head = nn.Linear(width, info.num_classes)
        self.slots = nn.ModuleDict({"early": nn.Identity(), "late": nn.Identity()})
        self._points = (SlotPoint("early", width, info.image_size), SlotPoint("late", width, info.image_size // 2))

    def slot_points(self) -> tuple[SlotPoint, ...]:
        return self._points

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.slots["early"](self.stem(x))
        x = self.slots["late"](self.body(x))
        return self.head(x.mean(dim=(2, 3)))


class ConvSeed(nn.Module):
    def __init__(self, channels: int, spatial: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        nn.init.zeros_(self.conv.weight)
        nn.init.zeros_(self.conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class NanSeed(nn.Module):
    """Harmless while isolated in TRAINING (its output is not used), NaN as soon as it is blended in."""

    def __init__(self, channels: int, spatial: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale * float("nan")


class AddBlend(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()

    def forward(self, h: torch.Tensor, s: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        a = alpha.view(-1, 1, 1, 1) if alpha.dim() == 1 else alpha
        return h + a * s


HOST = HostSpec(name="toy", description="toy host", factory=ToyHost, topology="cnn")
CONV = BlueprintSpec(name="conv", description="3x3 conv", factory=ConvSeed)
NAN = BlueprintSpec(name="nan_seed", description="NaN once blended", factory=NanSeed)
ADD = BlendStyleSpec(name="add", description="h + a*s", formula="h + a*s", factory=AddBlend)


class FakeRegistry:
    """The part of PluginRegistry the env and action space use."""

    def __init__(self, **specs: dict[str, Any]) -> None:
        self._specs = {"blueprint": {"conv": CONV, "nan_seed": NAN}, "blend_style": {"add": ADD}, **specs}

    def specs(self, kind: str) -> dict[str, Any]:
        return dict(self._specs.get(kind, {}))

    def get(self, kind: str, name: str) -> Any:
        return self._specs[kind][name]

    def names(self, kind: str) -> tuple[str, ...]:
        return tuple(self._specs.get(kind, {}))


class SumOfAccuracyReward:
    """Reward = validation accuracy delta; components let tests check bookkeeping."""

    def __init__(self) -> None:
        self.resets = 0
        self.calls: list[RewardInputs] = []

    def reset(self) -> None:
        self.resets += 1

    def __call__(self, inputs: RewardInputs) -> tuple[float, dict[str, float]]:
        self.calls.append(inputs)
        delta = inputs.after.val_acc - inputs.before.val_acc
        bonus = 1.0 if inputs.done else 0.0
        return delta + bonus, {"delta": delta, "terminal": bonus}


def toy_task(n_train: int = 96, n_val: int = 48, size: int = 8, seed: int = 0) -> TaskData:
    """Class = the brightest quadrant of a noisy image (4 classes): learnable in a few epochs."""
    generator = torch.Generator().manual_seed(seed)

    def make(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.randint(0, 4, (n,), generator=generator)
        x = torch.randint(0, 100, (n, 3, size, size), generator=generator).to(torch.uint8)
        half = size // 2
        for label in range(4):
            rows = slice(0, half) if label < 2 else slice(half, size)
            cols = slice(0, half) if label % 2 == 0 else slice(half, size)
            chosen = (y == label).nonzero().flatten()
            x[chosen[:, None], :, rows, cols] = x[chosen[:, None], :, rows, cols] + 120
        return x, y

    train_x, train_y = make(n_train)
    val_x, val_y = make(n_val)
    test_x, test_y = make(n_val)
    return TaskData(
        info=TaskInfo(name="toy", in_channels=3, image_size=size, num_classes=4),
        train_x=train_x, train_y=train_y, val_x=val_x, val_y=val_y, test_x=test_x, test_y=test_y,
        mean=(0.3, 0.3, 0.3), std=(0.25, 0.25, 0.25), augment=CropFlip(pad=1, flip=True),
    )


NO_OPTIONS = NoOptions()



# ----------------------------------------------------------------------------------- runner fakes
class ToyTask:
    def __init__(self, options: Any = None) -> None:
        self.options = options

    def available(self, data_dir: Any) -> bool:
        return True

    def load(self, data_dir: Any, device: Any, seed: int) -> TaskData:
        data = toy_task(seed=seed)
        moved = {k: getattr(data, k).to(device) for k in ("train_x", "train_y", "val_x", "val_y", "test_x", "test_y")}
        return attrs.evolve(data, **moved)


@attrs.frozen
class Contributor:
    name: str = "fakes"
    distribution: str | None = None
    version: str | None = None


TASK = TaskSpec(name="toy", description="toy task", factory=ToyTask, auto_priority=0)
REWARD = RewardSpec(name="acc", description="val acc delta", factory=lambda options: SumOfAccuracyReward())


class RunnerRegistry(FakeRegistry):
    """Adds tasks, hosts, rewards, policies, provenance and an observer to the fake registry."""

    def __init__(self, policies: dict[str, Any], blueprints: dict[str, Any] | None = None) -> None:
        super().__init__(
            task={"toy": TASK},
            host={"toy": HOST},
            reward={"acc": REWARD},
            policy=policies,
            **({"blueprint": blueprints} if blueprints is not None else {}),
        )
        self.events: list[dict[str, Any]] = []

    def contributor(self, kind: str, name: str) -> Contributor:
        self.get(kind, name)
        return Contributor()

    def emit(self, event: dict[str, Any]) -> None:
        self.events.append(event)


# ----------------------------------------------------------------------------------- policies
class RecordingLearner:
    """Acts like the random policy, stores features, counts resets and updates."""

    learns = True

    def __init__(self, options, context) -> None:
        self.inner = RandomPolicy(options, context)
        self.weight = torch.zeros(2)
        self.updates: list[dict[str, torch.Tensor]] = []
        self.resets: list[torch.Tensor] = []

    def initial_state(self, n_envs: int) -> torch.Tensor:
        return torch.zeros(n_envs, 1)

    def reset_state(self, state: torch.Tensor, done: torch.Tensor) -> torch.Tensor:
        self.resets.append(done.clone())
        return state * (~done).float().unsqueeze(1)

    def act(self, observations, state, deterministic: bool = False) -> PolicyOutput:
        out = self.inner.act(observations, None, deterministic)
        features = torch.tensor([[o.val_acc, float(o.epoch)] for o in observations])
        return attrs.evolve(out, features=features, state=state + 1, value=features[:, 0] + self.weight[0])

    def update(self, rollout) -> dict[str, float]:
        rollout.validate()
        self.updates.append({"obs": rollout.obs.clone(), "dones": rollout.dones.clone(), "rewards": rollout.rewards.clone()})
        self.weight += 0.5
        return {"loss": float(self.weight[0])}

    def state_dict(self):
        return {"inner": self.inner.state_dict(), "weight": self.weight.clone()}

    def load_state_dict(self, state) -> None:
        self.inner.load_state_dict(state["inner"])
        self.weight = state["weight"].clone()


class AdvanceAlways(RandomPolicy):
    """Claims every entry is valid and picks ADVANCE on slot 0: illegal in a fresh env."""

    def act(self, observations, state, deterministic: bool = False) -> PolicyOutput:
        out = super().act(observations, state, deterministic)
        actions = torch.zeros_like(out.actions)
        actions[:, 0] = int(Op.ADVANCE)
        masks = {h: torch.ones_like(m) for h, m in out.masks.items()}
        return attrs.evolve(out, actions=actions, masks=masks)


class IgnoresItsMasks(RandomPolicy):
    """Samples properly, then swaps the op for one its own stored op mask forbids (FOSSILIZE at start)."""

    def act(self, observations, state, deterministic: bool = False) -> PolicyOutput:
        out = super().act(observations, state, deterministic)
        actions = out.actions.clone()
        actions[:, 0] = int(Op.FOSSILIZE)
        return attrs.evolve(out, actions=actions)

POLICIES = {
    "random": RANDOM,
    "learner": PolicySpec(name="learner", description="test learner", factory=RecordingLearner, learns=True),
    "advance": PolicySpec(name="advance", description="illegal", factory=AdvanceAlways),
    "ignores": PolicySpec(name="ignores", description="illegal", factory=IgnoresItsMasks),
}


