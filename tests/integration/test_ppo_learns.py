"""Learning sanity: ppo_v2 (small) solves the slot game quickly and deterministically; random does not.

The slot game (tests/support/slot_game.py) pays for germinating the blueprint that fits the episode's context, in
a slot whose topology supports it, and then waiting. Solving it needs the whole factored machinery: the op
head must learn GERMINATE early and WAIT afterwards, the slot and blueprint heads must condition on the
context (the blueprint's mask depends on the sampled slot), and the sparse heads must be credited only on
the steps where they mattered. The tests at the end check that this intended solution really is the optimum.

Thresholds, measured on seeds 0-6 x ATEN_CPU_CAPABILITY=default/avx2/avx512 (21 runs, 1 torch thread, AMD EPYC
with avx512f; the test runs seed 0 only):

    seed                          0     1     2     3     4     5     6
    rounds to TARGET  default    10    10    20    15    25    15    20
                      avx2       10    10    15    10    20    15    15
                      avx512     10    10    15    10    20    15    15
    WAIT fraction (min/kernels) .978  1.0   1.0   1.0   1.0   1.0   1.0
    first germination step      0/1     0     0     0     0     0     0

- All 21 reached TARGET with the intended solution, without replay_mismatch/entropy_low warnings. Worst: 25
  rounds (seed 4, default). ROUND_CAP = 60 dates from before the critic fixes of issue 15 (network.py
  MIN_CRITIC_WIDTH: at these widths the critic was 16 -> 8 -> 4; update.py fit_critic_mean), when the worst
  was 40 (seed 5, default).
- WAIT fraction (ops of steps 1-15 in the 6 eval envs): trained >= 0.978 (>= 0.956 before those fixes); the
  uniform policy under the same masks (5,000 eval rounds, identical under all three kernels) averages 0.642
  (sd 0.041, max 0.767). WAIT_FRACTION = 0.86 sits about 0.1 from both.
- First germination: step 0 in most envs, at most step 1 (seed 0; before those fixes seed 2 WAITed twice in
  context 2, score 1.53); hence GERMINATE_BY = 4, a step of margin (set for the old step 2). The uniform policy
  gets the right blueprint before step 4 in 31% of envs, in all six eval envs in 2 of 5,000 rounds, and never
  together with the WAIT criterion.
- Before the game fix (a FOSSILIZED seed kept paying; see slot_game.py) seed 0 under avx2/avx512 learned to
  fossilize and germinate a second seed (WAIT fraction 54/90), and the former threshold, 2/3, was barely above
  random (0.641 on average, 0.756 at most over 200 rounds).

Temporary mutations (monkeypatched, not kept), seeds 0-6 at this size, measured before the game fix:
- baseline: solved in 30, 10, 20, 10, 20, 25, 20 rounds; never a replay mismatch.
- per-head advantages not masked by relevance: unsolved after 60 rounds on seeds 0, 3 and 6, solved
  late (50, 45) on 2 and 4, in 20 on 1 and 5; ``ratio_critical`` warnings on most of those runs. The unit
  tests ``test_irrelevant_heads_get_no_policy_gradient`` and ``test_policy_gradient_equals_...`` fail
  deterministically.
- the same plus a joint ratio over all heads: solved in 40, 10, 20, 40 rounds (seeds 0-3): slower, not
  broken here (clipping on the noisier joint ratio damps the noise); the same unit tests fail.
- update evaluating actions without the stored masks: never solved (score 0.4 at length 8 on 3 seeds),
  ``replay_mismatch`` at every update.
- masks recomputed from the state after each action: the rollout is rejected at the first update
  (``RolloutError``: stored actions invalid under their masks).
"""

from __future__ import annotations

import copy
import statistics
import time
from typing import Sequence

import attrs
import pytest
import torch

from esper_core.ops import Op
from esper_core.records import DecodedAction
from esper_core.specs import NoOptions
from esper_policies.random_policy import SPEC as RANDOM
from support.ppo_builders import games, policy, tiny_ppo
from support.slot_game import (
    BLUEPRINT_TOPOLOGIES,
    BLUEPRINTS,
    EPISODE_LENGTH,
    RIGHT_PAYS,
    SLOT_TOPOLOGIES,
    SLOTS,
    IllegalGameAction,
    RoundResult,
    SlotGame,
    game_context,
    play_round,
)

N_ENVS = 16
#: 16 steps per episode: blueprint/slot/tempo matter on 1 step in 16, as sparse as GERMINATE in real runs.
LENGTH = 16
OPTIMAL = RIGHT_PAYS * LENGTH
#: Seeds 0-6 x default/avx2/avx512 solved it in 10-25 rounds (module docstring; 10-40 before the critic fixes of
#: issue 15): 50% over the old worst.
ROUND_CAP = 60
EVAL_EVERY = 5
TARGET = 0.95 * OPTIMAL
EVAL_CONTEXTS = (0, 1, 2, 0, 1, 2)
#: The first germination comes before step 4: measured at step 0 or 1 (2 before the critic fixes; module docstring).
GERMINATE_BY = 4
#: Share of WAIT among the ops of steps 1..LENGTH-1 over the eval envs: trained >= 0.978, random <= 0.767.
WAIT_FRACTION = 0.86


@attrs.frozen
class Germination:
    step: int
    slot: str
    blueprint: str


def first_germination(evaluation: RoundResult, env: int) -> Germination | None:
    """The first GERMINATE that env ``env`` made in the evaluation episode (None if it never germinated)."""
    history = evaluation.observations
    for step in range(len(history) - 1):
        before, after = history[step][env], history[step + 1][env]
        if after.last_op == Op.GERMINATE:
            (slot,) = [a for b, a in zip(before.slots, after.slots) if b.blueprint is None and a.blueprint is not None]
            return Germination(step, slot.name, slot.blueprint)
    return None


def germinates_right(germination: Germination | None, context: int) -> bool:
    """The intended first move: the context's blueprint, in a slot that fits it, before step ``GERMINATE_BY``."""
    return (
        germination is not None
        and germination.step < GERMINATE_BY
        and germination.blueprint == BLUEPRINTS[context]
        and SLOT_TOPOLOGIES[SLOTS.index(germination.slot)] in BLUEPRINT_TOPOLOGIES[germination.blueprint]
    )


def wait_fraction(evaluation: RoundResult) -> float:
    """The share of WAIT among the ops of steps 1..T-1 (step 0 is where the germination belongs), over all envs."""
    ops = [obs.last_op for observations in evaluation.observations[2:] for obs in observations]
    return ops.count(Op.WAIT) / len(ops)


def _evaluate(p) -> tuple[float, RoundResult]:
    eval_games = [SlotGame(10**6 + i, LENGTH) for i in range(len(EVAL_CONTEXTS))]
    result = play_round(p, eval_games, deterministic=True, contexts=EVAL_CONTEXTS)
    return statistics.mean(result.returns), result


def train_until_solved(
    device: str = "cpu", bf16: bool = False, seed: int = 0, round_cap: int = ROUND_CAP
) -> tuple[float, int, float, RoundResult, list[str]]:
    """Train a small ppo_v2 on the slot game, evaluating deterministically every few rounds."""
    started = time.perf_counter()
    learner = policy(n_envs=N_ENVS, seed=seed, ppo=tiny_ppo(feature_dim=32, lstm_dim=32, blueprint_embed_dim=4,
                                                           update_epochs=4, bf16=bf16),
                     device=device, episode_length=LENGTH, minibatches=2)
    train_games = games(N_ENVS, seed=seed, episode_length=LENGTH)
    buffer, score, rounds, warnings, evaluation = None, float("-inf"), 0, [], None
    while rounds < round_cap and score < TARGET:
        result = play_round(learner, train_games, rollout=buffer)
        buffer = result.rollout
        metrics = learner.update(buffer)
        warnings += metrics["warnings"]
        rounds += 1
        if rounds % EVAL_EVERY == 0:
            score, evaluation = _evaluate(learner)
    return score, rounds, time.perf_counter() - started, evaluation, warnings


def random_evaluation(seed: int) -> RoundResult:
    """The uniform policy under the same masks, on the evaluation games and contexts."""
    eval_games = [SlotGame(10**6 + i, LENGTH) for i in range(len(EVAL_CONTEXTS))]
    return play_round(random_policy(seed, len(EVAL_CONTEXTS)), eval_games, contexts=EVAL_CONTEXTS)


def random_policy(seed: int, n_envs: int = N_ENVS):
    return RANDOM.factory(NoOptions(), game_context(n_envs, seed=seed, episode_length=LENGTH))


def test_ppo_v2_learns_the_slot_game_and_random_does_not() -> None:
    score, rounds, elapsed, evaluation, warnings = train_until_solved()
    assert score >= TARGET, f"ppo_v2 reached only {score:.3f} of {OPTIMAL:.3f} in {rounds} rounds ({elapsed:.0f}s)"
    assert not [w for w in warnings if w.startswith(("replay_mismatch", "entropy_low"))], warnings
    print(f"ppo_v2 solved the slot game in {rounds} rounds, {elapsed:.1f}s (score {score:.3f})")

    # The solution is the intended one: the right blueprint, in a slot that fits it, early, then mostly WAIT
    # (the odd late germination or costly op that remains is paid for in the score above).
    for env, context in enumerate(EVAL_CONTEXTS):
        germination = first_germination(evaluation, env)
        assert germinates_right(germination, context), (env, context, germination)
    assert wait_fraction(evaluation) >= WAIT_FRACTION, [[o[e].last_op.name for o in evaluation.observations[2:]]
                                                        for e in range(len(EVAL_CONTEXTS))]

    # The uniform baseline under the same masks is far from it, on the returns and on each criterion above.
    random_returns = [
        r for seed in range(3) for r in play_round(random_policy(seed), games(N_ENVS, seed, LENGTH)).returns
    ]
    assert statistics.mean(random_returns) < 0.5 * OPTIMAL
    assert max(random_returns) <= OPTIMAL + 1e-9
    for seed in range(3):
        baseline = random_evaluation(seed)
        assert not all(germinates_right(first_germination(baseline, e), c) for e, c in enumerate(EVAL_CONTEXTS))
        assert wait_fraction(baseline) < WAIT_FRACTION


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("bf16", [False, True], ids=["float32", "bf16"])
def test_ppo_v2_learns_on_cuda(bf16: bool) -> None:
    score, rounds, elapsed, _, warnings = train_until_solved("cuda", bf16=bf16)
    assert score >= TARGET, f"ppo_v2 (cuda, bf16={bf16}) reached only {score:.3f} in {rounds} rounds ({elapsed:.0f}s)"
    assert not [w for w in warnings if w.startswith("replay_mismatch")], warnings


# The game's optimum is the intended solution: nothing earns more than the right seed, germinated at step 0.


def _germinate(slot: str, blueprint: str) -> DecodedAction:
    return DecodedAction(op=Op.GERMINATE, slot=slot, blueprint=blueprint, style="add", tempo=1, alpha_target=1.0)


def _play(context: int, plan: Sequence[DecodedAction], length: int = LENGTH) -> list[float]:
    """Rewards of one episode that follows ``plan`` and then WAITs; an illegal step raises."""
    game = SlotGame(0, length)
    game.reset(context)
    return [game.step(plan[step] if step < len(plan) else DecodedAction(op=Op.WAIT))[1] for step in range(length)]


@pytest.mark.parametrize("context", range(len(BLUEPRINTS)))
def test_the_intended_solution_earns_the_documented_optimum(context: int) -> None:
    slot = next(s for s, t in zip(SLOTS, SLOT_TOPOLOGIES) if t in BLUEPRINT_TOPOLOGIES[BLUEPRINTS[context]])
    assert sum(_play(context, [_germinate(slot, BLUEPRINTS[context])])) == pytest.approx(OPTIMAL)


def test_fossilizing_and_germinating_again_does_not_beat_the_intended_solution() -> None:
    """The loophole a trained seed found (this play earned 2.61 instead of 1.6): in context 1 the right blueprint fits
    both slots; a FOSSILIZED seed used to keep paying while not counting toward ``max_seeds=1``, so a second seed
    could join it. Fossilized seeds no longer pay: one seed pays at a time, at most ``RIGHT_PAYS`` a step."""
    intended = _play(1, [_germinate("s0", "both")])
    advance, fossilize = DecodedAction(op=Op.ADVANCE, slot="s0"), DecodedAction(op=Op.FOSSILIZE, slot="s0")
    wait = DecodedAction(op=Op.WAIT)
    exploit = _play(1, [_germinate("s0", "both"), wait, advance, advance, fossilize, _germinate("s1", "both")])
    assert max(exploit) <= RIGHT_PAYS + 1e-9, exploit
    assert sum(intended) == pytest.approx(OPTIMAL)
    assert sum(exploit) < sum(intended), (sum(exploit), exploit)


def _search_actions() -> list[DecodedAction]:
    """Every op on every slot, every blueprint and tempo. Alpha never pays; its targets and speeds only change
    when gates open, so the search keeps the fastest ones (target 1.0, instant) to stay small."""
    actions = [DecodedAction(op=Op.WAIT)]
    for slot in SLOTS:
        actions += [DecodedAction(op=op, slot=slot) for op in (Op.ADVANCE, Op.FOSSILIZE)]
        actions += [DecodedAction(op=op, slot=slot, alpha_target=1.0, alpha_speed="instant")
                    for op in (Op.PRUNE, Op.SET_ALPHA_TARGET)]
        actions += [attrs.evolve(_germinate(slot, blueprint), tempo=tempo)
                    for blueprint in BLUEPRINTS for tempo in (1, 2)]
    return actions


def best_return(context: int, length: int) -> float:
    """The most any play (over ``_search_actions``) earns in an episode: exhaustive, memoised on the state."""
    actions, memo = _search_actions(), {}

    def value(game: SlotGame) -> float:
        if game.epoch >= length:
            return 0.0
        key = (game.epoch, tuple(attrs.astuple(slot) for slot in game.slots))
        if key not in memo:
            best = float("-inf")
            for action in actions:
                child = copy.copy(game)
                child.slots = [attrs.evolve(slot) for slot in game.slots]
                try:
                    reward = child.step(action)[1]
                except IllegalGameAction:
                    continue
                best = max(best, reward + value(child))
            memo[key] = best
        return memo[key]

    game = SlotGame(0, length)
    game.reset(context)
    return value(game)


@pytest.mark.parametrize("context", range(len(BLUEPRINTS)))
def test_no_play_beats_the_intended_solution(context: int) -> None:
    """Long enough for the fossilize-and-germinate-again loophole (it would earn 1.01 here instead of 0.8)."""
    best, intended = best_return(context, EPISODE_LENGTH), RIGHT_PAYS * EPISODE_LENGTH
    assert best == pytest.approx(intended), (context, best, intended)
