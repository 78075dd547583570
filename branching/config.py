"""Settings, stop reasons and results of the branch-and-bound search."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

__all__ = ["BabConfig", "BabResult", "BabStats", "StopReason"]

SPLIT_MODES = ("auto", "activation", "input")
POINT_METHODS = ("table", "midpoint")
INTERMEDIATE_MODES = ("auto", "interval", "crown")


class StopReason(str, enum.Enum):
    """Why a search ended."""

    PROVED = "proved"
    COUNTEREXAMPLE = "counterexample"
    TIMEOUT = "timeout"
    MEMORY = "memory"
    NO_CANDIDATE = "no_candidate"
    MAX_DOMAINS = "max_domains"
    MAX_DEPTH = "max_depth"


@dataclass(frozen=True, slots=True)
class BabConfig:
    """Branch-and-bound settings. The defaults run every supported model.

    Attributes:
        split: "auto" (input splitting when at most ``input_split_max_dims`` input
            values are free in the box, activation splitting otherwise), "activation" or "input".
        heuristic: activation heuristic, a key of :data:`branching.heuristics.HEURISTICS`.
        input_heuristic: input-splitting heuristic, a key of
            :data:`branching.heuristics.INPUT_HEURISTICS`.
        points: "table" (pre-optimised branching points) or "midpoint".
        batch_size: domains popped per round (each gives two children). 128 rather than
            64: fewer, larger tensor operations per domain (bench_bab, float64, 15 s: eran
            6x200 212 -> 247 domains/s, zoo mlp_relu 2,962 -> 4,507; mnist_fc 256x4 prop_11
            solved in 21.8 s instead of 24.2 s) for ~20 % more peak memory.
        input_batch_size: boxes popped per round in input splitting.
        order: "lifo" or "worst" (see :class:`branching.domains.DomainStore`).
        iterations: alpha/beta Adam steps per round.
        catchup_iterations: up to this many more steps for the children whose own bound
            is still below their parent's after ``iterations`` (the others stop); without
            them such a child keeps its parent's bound and parameters and is split again
            without progress.
        root_iterations: Adam steps for the root domain.
        lr_alpha, lr_beta: step sizes.
        filter: bound both children of the heuristic's top ``filter`` candidates (one pass,
            no optimisation) and split the one whose worse child is best (kFSB-like);
            1 takes the heuristic's choice as is. 2 (BBPS's best and BaBSR-like's best)
            rather than 4: fewer domains and less time on the rows that need
            branching (same day, 60 s: mnist_fc 256x4 prop_11 9,001 domains in 31.8 s
            -> 7,855 in 25.7 s, prop_3 23.9 -> 22.6 s, vit 7308 27.5 -> 25.5 s, vit
            4021 16.6 -> 14.7 s, ml4acopf 118 prop2 11 domains either way); 1 stalls
            on ml4acopf 118 prop2 and doubles vit 7308's domains.
        filter_mix: a second heuristic whose best candidates take half of the filter's
            slots ('' or the main heuristic: none). The estimates fail in different places
            (BBPS alone stalled on ml4acopf 118 prop2, which BaBSR-like proves in 7 domains),
            and the filter's real bounds pick the better split.
        float32_search: activation splitting of a float64 problem bounds its domains in
            float32 and verifies every domain it would drop again with one float64 pass
            from the float64 root intervals (the proof never rests on a float32 bound).
            Off by default. Same day, one run at a time, 60 s: mnist_fc 256x4 prop_3
            proved in 25.1 s instead of 29.9, prop_11 28.0 instead of 29.8, vit 7308
            29.3 instead of 32.1, with 10-25 % less memory; eran's Sigmoid 6x200 is
            slower (1655: 148 vs 170 domains/s: the float64 rechecks cost more than
            float32 saves). It still stalls on the zoo mlp_sigmoid case with
            ``batch_size=4`` (2,845 domains at depth 96 in 30 s; float64: 31 domains),
            though no longer with 16 (see :func:`bounds.subdomains.split_constraints`).
        intermediate: how a child's intermediate intervals are tightened after its split:
            "interval" (one interval pass from the split intervals, intersected with the
            parent's), "crown" (that, and every node after the earliest split node of
            the round re-bounded by CROWN in each child: the split neuron's relaxation is
            then exact in every later node's bound, not only in its interval), or "auto"
            (crown on graphs whose bounded nodes all feed piecewise-linear consumers,
            i.e. ReLU networks, where only unstable neurons need rows; interval
            elsewhere). Same day, one run at a time, 60 s, crown up to depth 4 against
            interval: mnist_fc 256x4 prop_3 proved in 5.8 s instead of 25.1 (115
            domains instead of 6,433), prop_8_0.03 15.0 s instead of 17.8, prop_11 27.7
            instead of 30.4; the rows that time out either way verify the same share of
            the tree (prop_6_0.03 64.5 % vs 64.3 %, prop_5 90.6 vs 90.7, eran
            mnist_relu_9_200 2697 17.3 vs 17.0). On Sigmoid, power-flow and attention
            graphs CROWN rows for every neuron cost more than they gain (ml4acopf 118
            prop3: 12 % of the tree verified instead of 28 %).
        refine_depth: with "crown", children deeper than this keep their parent's
            re-bounded intervals and get the interval pass only (0: every depth).
            Re-bounding every child proves mnist_fc prop_11 in 1,799 domains instead of
            7,915 but bounds 40-75 domains/s instead of 270-450, and the rows that time
            out verify much less (prop_6_0.03: 27 % of the tree; depth 8 as bad).
        refine_rows: with "crown", re-bound only each child's this many widest
            (unstable) neurons per node (0: all of them; 16 halves the cost and keeps
            most of the gain on mnist_fc, but all rows up to depth 4 were better).
        stabilize: before the search of a ReLU network (``intermediate`` resolving to
            "crown"), prove intermediate neurons stable with small searches
            (:func:`branching.stabilize.stabilize`, one batched
            :class:`branching.multi.RowSearch` per node) and start from the tightened
            intervals, when at least ``stabilize_min_s`` seconds are left for the search.
            At mnist_fc's 60 s cap it proves 256x4 prop_5_0.05 in 18.8 s and 256x6
            prop_3_0.05 in 16.5 s (the stabilised root refutes every case), neither of
            which the search alone proves in 300 s; the rows a short search proves take
            1-5 s longer (prop_3 7.8 s instead of 6.8, prop_8_0.03 20.8 instead of
            15-20) or less (prop_11 24.3 instead of 37.7).
        stabilize_min_s: the least time left for the search (after the incomplete
            stages) at which ``stabilize`` runs; 0: always.
        stabilize_share: the share of the remaining time the stabilising searches may use
            (they stop earlier when every candidate is settled or the re-bounded root
            refutes every case). At the 60 s cap 0.5 proves 256x4 prop_13_0.05 in 35 s,
            0.33 in 50-60 s or not at all; prop_5, prop_8_0.03, prop_11 and 256x6 prop_3
            take the same time either way.
        stabilize_domains: domains each neuron's search may bound, in passes over the
            nodes (:func:`branching.stabilize.pass_plan`: a quarter of it for the
            neurons closest to stable, all of it for those left, a quarter for the
            rest, then narrowing passes from an eighth of it up to twice it): 256
            proves 191 of prop_5's 225 candidates, 64 proves 150 (and leaves its root
            open), 128 proves 181.
        max_memory_mb: cap on the bytes the open domains may hold.
        shortcut_memory_mb: cap on BBPS's root linear bounds of split nodes.
        max_domains: stop with ``max_domains`` after bounding this many (0: no cap).
        max_depth: stop with ``max_depth`` when a domain needs a split deeper than this
            (0: no cap).
        input_split_max_dims: "auto" splits inputs with at most this many free values.
        attack_every: run PGD from the most promising leaves every this many rounds (0: never).
        attack_leaves: leaves PGD starts from.
        attack_steps: PGD steps per start.
    """

    split: str = "auto"
    heuristic: str = "bbps"
    input_heuristic: str = "mixed"
    points: str = "table"
    batch_size: int = 128
    input_batch_size: int = 512
    order: str = "lifo"
    iterations: int = 8
    catchup_iterations: int = 8
    root_iterations: int = 20
    lr_alpha: float = 0.1
    lr_beta: float = 0.05
    filter: int = 2
    filter_mix: str = "babsr"
    float32_search: bool = False
    intermediate: str = "auto"
    refine_depth: int = 4
    refine_rows: int = 0
    stabilize: bool = True
    stabilize_min_s: float = 30.0
    stabilize_share: float = 0.5
    stabilize_domains: int = 256
    max_memory_mb: float = 4096.0
    shortcut_memory_mb: float = 256.0
    max_domains: int = 0
    max_depth: int = 0
    input_split_max_dims: int = 16
    attack_every: int = 4
    attack_leaves: int = 16
    attack_steps: int = 20

    def __post_init__(self) -> None:
        from .domains import ORDERS
        from .heuristics import HEURISTICS, INPUT_HEURISTICS

        checks = [
            (self.split in SPLIT_MODES, f"bab.split must be one of {', '.join(SPLIT_MODES)}"),
            (self.heuristic in HEURISTICS, f"bab.heuristic must be one of {', '.join(HEURISTICS)}"),
            (
                self.input_heuristic in INPUT_HEURISTICS,
                f"bab.input_heuristic must be one of {', '.join(INPUT_HEURISTICS)}",
            ),
            (self.points in POINT_METHODS, f"bab.points must be one of {', '.join(POINT_METHODS)}"),
            (self.order in ORDERS, f"bab.order must be one of {', '.join(ORDERS)}"),
            (self.batch_size >= 1 and self.input_batch_size >= 1, "bab batch sizes must be >= 1"),
            (
                min(self.iterations, self.root_iterations, self.catchup_iterations) >= 0,
                "bab iterations must be >= 0",
            ),
            (
                self.intermediate in INTERMEDIATE_MODES,
                f"bab.intermediate must be one of {', '.join(INTERMEDIATE_MODES)}",
            ),
            (min(self.refine_depth, self.refine_rows) >= 0, "bab refine settings must be >= 0"),
            (self.max_memory_mb > 0, "bab.max_memory_mb must be > 0"),
            (
                0 <= self.stabilize_share <= 1
                and self.stabilize_domains >= 1
                and self.stabilize_min_s >= 0,
                "bab.stabilize_share must be in [0, 1], bab.stabilize_domains >= 1 and "
                "bab.stabilize_min_s >= 0",
            ),
            (self.filter >= 1, "bab.filter must be >= 1"),
            (
                self.filter_mix in HEURISTICS or self.filter_mix == "",
                f"bab.filter_mix must be '' or one of {', '.join(HEURISTICS)}",
            ),
            (self.max_domains >= 0 and self.max_depth >= 0, "bab caps must be >= 0"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)


@dataclass
class BabStats:
    """Counters of one search (updated in place while it runs).

    ``verified_share`` is ``1 - sum 2^-depth`` over the open domains: the share of the
    search tree already verified (each split gives each child half its parent's share),
    a measure of progress on searches that time out."""

    rounds: int = 0
    domains_bounded: int = 0
    domains_left: int = 0
    max_depth: int = 0
    worst_margin: float = float("-inf")
    elapsed_s: float = 0.0
    candidates_checked: int = 0
    peak_domains: int = 0
    domains_filtered: int = 0
    rechecked: int = 0
    rechecks_failed: int = 0
    verified_share: float = 0.0
    split: str = ""

    @property
    def domains_per_s(self) -> float:
        return self.domains_bounded / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "bab_rounds": self.rounds,
            "bab_domains": self.domains_bounded,
            "bab_domains_left": self.domains_left,
            "bab_max_depth": self.max_depth,
            "bab_worst_margin": self.worst_margin,
            "bab_domains_per_sec": round(self.domains_per_s, 2),
            "bab_candidates_checked": self.candidates_checked,
            "bab_peak_domains": self.peak_domains,
            "bab_domains_filtered": self.domains_filtered,
            "bab_rechecked": self.rechecked,
            "bab_rechecks_failed": self.rechecks_failed,
            "bab_verified_share": round(self.verified_share, 6),
        }


@dataclass
class BabResult:
    """Outcome of one search: why it stopped, the counterexample if one was confirmed."""

    reason: StopReason
    counterexample: Any = None
    stats: BabStats = field(default_factory=BabStats)
    detail: str = ""
