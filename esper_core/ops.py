"""The factored action vocabulary: ops, head names, and which heads each op causally uses."""

from enum import IntEnum


class Op(IntEnum):
    """The op head. Index order is stable (checkpoints and masks depend on it)."""

    WAIT = 0
    GERMINATE = 1
    SET_ALPHA_TARGET = 2
    PRUNE = 3
    FOSSILIZE = 4
    ADVANCE = 5


#: Head order used everywhere an action is a tensor of shape [..., len(HEADS)].
HEADS: tuple[str, ...] = (
    "op",
    "slot",
    "blueprint",
    "style",
    "tempo",
    "alpha_target",
    "alpha_speed",
    "alpha_curve",
)

#: Causal relevance: the heads whose choice changes what an op does, explicit per op
#: (docs/design/ppo-lessons.md, "Causal relevance masks"; the table: docs/architecture.md).
RELEVANT_HEADS: dict[Op, frozenset[str]] = {
    Op.WAIT: frozenset({"op"}),
    Op.GERMINATE: frozenset({"op", "slot", "blueprint", "style", "tempo", "alpha_target"}),
    # Earlier designs credited `style` here too, but retargeting never changes a seed's blend style, so crediting
    # the style head for it would only add noise to its gradient. Relevance follows what the executor does.
    Op.SET_ALPHA_TARGET: frozenset({"op", "slot", "alpha_target", "alpha_speed", "alpha_curve"}),
    Op.PRUNE: frozenset({"op", "slot", "alpha_speed", "alpha_curve"}),
    Op.FOSSILIZE: frozenset({"op", "slot"}),
    Op.ADVANCE: frozenset({"op", "slot"}),
}

#: Heads that pick a value (a tempo, an alpha target, speed or curve): every entry is always legal, so their
#: masks never depend on the env's state.
VALUE_HEADS: tuple[str, ...] = ("tempo", "alpha_target", "alpha_speed", "alpha_curve")

#: Alpha speeds: name -> epochs a retarget or a prune fade takes (0 = applied at once).
ALPHA_SPEEDS: dict[str, int] = {"instant": 0, "fast": 2, "medium": 4, "slow": 8}

#: Alpha curves, in head order. Their shapes live in esper_core.growth.alpha.
ALPHA_CURVES: tuple[str, ...] = ("linear", "cosine", "sigmoid_gentle", "sigmoid", "sigmoid_sharp")
