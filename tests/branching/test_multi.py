"""Many cases in one store (``branching.multi.RowSearch``): with budgets that let both
finish, every case gets the answer its own single search gives; proved cases hold on
dense samples, refuted ones are violated at a point; caps, deadlines and the
``on_proved`` stop give up the open cases."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from bounds import BoundGraph, compute_bounds
from bounds.deadline import Deadline
from branching import BabConfig, BabProblem, StopReason, run_bab
from branching.multi import CaseStatus, RowSearch
from branching.stabilize import prefix_graph, stabilizable_nodes
from models import evaluate, load_onnx
from models.zoo import zoo_model_path


def _cases(radius: float, count: int = 24):
    """mlp_relu cut at its second hidden node ``z``; case ``p``: ``c_p·z >= -1`` for a random
    direction ``c_p`` scaled so the sampled minimum lies a little above -1 (most hold, some
    only by a search) or a little below (refuted)."""
    bg = BoundGraph(load_onnx(zoo_model_path("mlp_relu")))
    centre = torch.linspace(-0.3, 0.4, 8, dtype=torch.float64).reshape((1,) + bg.input_shape)
    lo, hi = centre - radius, centre + radius
    root = dict(compute_bounds(bg, lo, hi, method="crown", bound_upper=False).intermediate)
    name = stabilizable_nodes(bg)[0]
    cut = prefix_graph(bg, name)
    n = root[name].lower.numel()
    gen = torch.Generator().manual_seed(0)
    C = torch.randn(count, 1, n, generator=gen, dtype=torch.float64)
    m = _samples(cut, lo, hi, C)
    gap = torch.tensor([0.3, 0.1, 0.03, -0.02], dtype=torch.float64).repeat(count // 4 + 1)
    C = C * ((1.0 - gap[:count]) / m.abs().clamp_min(1e-6)).reshape(-1, 1, 1)
    root_cut = {k: v for k, v in root.items() if k == cut.input_name or k in cut.infos}
    return cut, lo, hi, C, root_cut


D = torch.tensor([-1.0], dtype=torch.float64)


def _samples(cut: BoundGraph, lo, hi, C, seed: int = 1) -> torch.Tensor:
    """``[P]`` the smallest sampled ``C_p·z`` (random points and box corners)."""
    gen = torch.Generator().manual_seed(seed)
    shape = (20000,) + tuple(lo.shape[1:])
    x = lo + (hi - lo) * torch.rand(shape, generator=gen, dtype=lo.dtype)
    corners = torch.where(torch.rand(shape, generator=gen, dtype=lo.dtype) < 0.5, lo, hi)
    with torch.no_grad():
        z = evaluate(cut.source, torch.cat([x, corners])).reshape(2 * shape[0], -1)
    return (z @ C[:, 0].T).min(0).values


@pytest.mark.parametrize(
    ("radius", "batch", "f32"),
    [(0.15, 128, False), (0.3, 128, False), (0.15, 3, False), (0.3, 128, True)],
)
def test_every_case_gets_its_single_search_answer(radius: float, batch: int, f32: bool) -> None:
    """Batch 3: fewer than the cases, so rounds mix roots' and children's records; f32:
    bounds in float32, verified domains rechecked in float64 with each case's rows."""
    cut, lo, hi, C, root = _cases(radius)
    assert C.shape[0] >= 4
    cfg = BabConfig(split="activation", attack_every=0, max_domains=4000, float32_search=f32)
    search = RowSearch(cut, lo, hi, C, D, root, replace(cfg, batch_size=batch))
    res = search.run(Deadline.after(120.0))
    assert search.stats.rechecked > 0 if f32 else search.stats.rechecked == 0
    sampled = _samples(cut, lo, hi, C, seed=2)
    single = []
    for p in range(C.shape[0]):

        def falsify(points, p=p):
            with torch.no_grad():
                z = evaluate(cut.source, points).reshape(points.shape[0], -1)
            return True if bool(((z @ C[p, 0]) <= -1.0).any()) else None

        out = run_bab(
            cut, BabProblem(lo, hi, C[p], D, D, root), cfg, Deadline.after(60.0), falsify=falsify
        )
        single.append(out.reason)
    status = [CaseStatus(int(s)) for s in res.status]
    assert CaseStatus.OPEN not in status
    same = {StopReason.PROVED: CaseStatus.PROVED, StopReason.COUNTEREXAMPLE: CaseStatus.REFUTED}
    for p, (mine, theirs) in enumerate(zip(status, single)):
        want = same.get(theirs, CaseStatus.GAVE_UP)  # e.g. no candidate left: both give up
        assert mine == want, (p, mine, theirs)
        if mine == CaseStatus.PROVED:
            assert float(sampled[p]) > -1.0, p  # sound: no sample violates it
    assert CaseStatus.PROVED in status and CaseStatus.REFUTED in status
    assert int(res.bounded.min()) >= 1


def test_a_domain_cap_of_one_proves_only_what_the_root_bound_proves() -> None:
    cut, lo, hi, C, root = _cases(0.3)
    cfg = BabConfig(split="activation", attack_every=0, max_domains=1)
    res = RowSearch(cut, lo, hi, C, D, root, cfg).run(Deadline.after(60.0))
    assert int(res.bounded.max()) == 1  # the roots only: no case was branched
    assert bool((res.status != CaseStatus.OPEN).all())
    more = RowSearch(cut, lo, hi, C, D, root, replace(cfg, max_domains=4000)).run(
        Deadline.after(60.0)
    )
    assert int((more.status == CaseStatus.PROVED).sum()) > int(
        (res.status == CaseStatus.PROVED).sum()
    )


def test_on_proved_can_stop_the_search_and_an_expired_deadline_gives_up() -> None:
    cut, lo, hi, C, root = _cases(0.3)
    cfg = BabConfig(split="activation", attack_every=0, max_domains=4000)
    seen: list[int] = []

    def stop_at_first(cases: list[int]) -> bool:
        seen.extend(cases)
        return True

    res = RowSearch(cut, lo, hi, C, D, root, cfg, stop_at_first).run(Deadline.after(60.0))
    proved = res.proved().tolist()
    assert proved and sorted(seen) == proved
    assert bool((res.status != CaseStatus.OPEN).all())
    late = RowSearch(cut, lo, hi, C, D, root, cfg).run(Deadline.after(0.0))
    assert int(late.bounded.max()) == 1  # the roots only
    assert bool((late.status != CaseStatus.OPEN).all())


def test_rows_must_be_three_dimensional() -> None:
    cut, lo, hi, C, root = _cases(0.3)
    with pytest.raises(ValueError, match="P, S, n_out"):
        RowSearch(cut, lo, hi, C[:, 0], D, root, BabConfig())


def test_probes_give_up_hopeless_cases_early_and_prove_nothing_new() -> None:
    cut, lo, hi, C, root = _cases(0.3)
    cfg = BabConfig(split="activation", attack_every=0, max_domains=400)
    plain = RowSearch(cut, lo, hi, C, D, root, cfg)
    full = plain.run(Deadline.after(60.0))
    probed = RowSearch(cut, lo, hi, C, D, root, cfg, probes=((8, 0.1), (32, 0.5)))
    early = probed.run(Deadline.after(60.0))
    assert set(early.proved().tolist()) <= set(full.proved().tolist())
    assert int(early.bounded.sum()) < int(full.bounded.sum())
    gave_up = early.status == CaseStatus.GAVE_UP
    assert bool((early.bounded[gave_up] < full.bounded[gave_up]).any())
    share = plain.verified_share()
    assert bool((share[full.status == CaseStatus.PROVED] == 1.0).all())
    assert bool((share >= 0).all() and (share <= 1).all())


def _pgd_min(cut: BoundGraph, lo, hi, C, steps: int = 60) -> torch.Tensor:
    """``[P]`` the least ``C_p·z`` that signed PGD from random starts reaches in the box."""
    gen = torch.Generator().manual_seed(3)
    P = C.shape[0]
    x = lo + (hi - lo) * torch.rand((P,) + tuple(lo.shape[1:]), generator=gen, dtype=lo.dtype)
    step = 0.25 * (hi - lo)
    for _ in range(steps):
        x.requires_grad_(True)
        with torch.enable_grad():
            v = (evaluate(cut.source, x).reshape(P, -1) * C[:, 0]).sum(-1)
            (grad,) = torch.autograd.grad(v.sum(), x)
        with torch.no_grad():
            x = torch.minimum(torch.maximum(x - step * grad.sign(), lo), hi)
        step = 0.9 * step
    with torch.no_grad():
        return (evaluate(cut.source, x).reshape(P, -1) * C[:, 0]).sum(-1)


@pytest.mark.parametrize("radius", [0.3, 0.6])
def test_cases_that_give_up_leave_a_sound_floor_above_the_root_bound(radius: float) -> None:
    """A case stopped by its domain cap knows ``C_p·z - d >= floor`` on the whole box: no
    sample and no PGD point goes below it, and the search lifted it above the roots' bound
    (a cap of one domain leaves the roots' margins as floors)."""
    cut, lo, hi, C, root = _cases(radius)
    cfg = BabConfig(split="activation", attack_every=0)
    roots = RowSearch(cut, lo, hi, C, D, root, replace(cfg, max_domains=1)).run(
        Deadline.after(60.0)
    )
    res = RowSearch(cut, lo, hi, C, D, root, replace(cfg, max_domains=16)).run(Deadline.after(60.0))
    low = torch.minimum(_samples(cut, lo, hi, C, seed=4), _pgd_min(cut, lo, hi, C)) - D
    gave_up = res.status == CaseStatus.GAVE_UP
    assert int(gave_up.sum()) >= 2
    known = gave_up & torch.isfinite(res.floor)
    assert bool(known[gave_up].all())
    assert bool((res.floor[known] <= low[known] + 1e-9).all())
    assert bool((res.floor[known] <= 0).all())
    assert bool((res.floor[~gave_up] == float("-inf")).all())
    both = known & torch.isfinite(roots.floor)
    assert bool((res.floor[both] >= roots.floor[both] - 1e-9).all())
    assert bool((res.floor[both] > roots.floor[both] + 1e-6).any())


def test_a_float32_search_leaves_no_floor() -> None:
    cut, lo, hi, C, root = _cases(0.6)
    cfg = BabConfig(split="activation", attack_every=0, max_domains=16, float32_search=True)
    res = RowSearch(cut, lo, hi, C, D, root, cfg).run(Deadline.after(60.0))
    assert bool((res.status == CaseStatus.GAVE_UP).any())
    assert bool((res.floor == float("-inf")).all())


def test_without_refuting_every_case_keeps_a_sound_floor() -> None:
    """``refute=False`` (only floors wanted): the violated cases are not refuted but give up
    at their cap, with floors no sample or PGD point goes below."""
    cut, lo, hi, C, root = _cases(0.3)
    cfg = BabConfig(split="activation", attack_every=0, max_domains=16)
    res = RowSearch(cut, lo, hi, C, D, root, cfg, refute=False).run(Deadline.after(60.0))
    low = torch.minimum(_samples(cut, lo, hi, C, seed=5), _pgd_min(cut, lo, hi, C)) - D
    assert not bool((res.status == CaseStatus.REFUTED).any())
    violated = low < 0
    assert bool(violated.any())
    assert bool((res.status[violated] == CaseStatus.GAVE_UP).all())
    assert bool(torch.isfinite(res.floor[violated]).all())
    gave_up = res.status == CaseStatus.GAVE_UP
    assert bool((res.floor[gave_up] <= low[gave_up] + 1e-9).all())
