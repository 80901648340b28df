"""The IA head: reference structure, init behaviour, masks, per-clip projection, gradients."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from model.complexity import count
from model.config import ModelConfig, Structure, preset
from model.head import AIAHead, Classifier
from model.interaction import InteractionAggregation, per_person
from model.network import empty_memory, no_objects

STRUCTURES = [s.value for s in Structure]


def head_inputs(cfg: ModelConfig, persons: list[int], objects: list[int], memory: list[int]):
    """Random features for len(persons) clips with the given counts; padded slots hold noise
    so that a missing mask would show."""
    b, d = len(persons), cfg.feature_dim
    feats = torch.randn(sum(persons), d)
    batch = torch.repeat_interleave(torch.arange(b), torch.tensor(persons))
    o, m = max(objects, default=0), max(memory, default=0)
    obj = torch.randn(b, o, d)
    obj_mask = torch.arange(o)[None] < torch.tensor(objects)[:, None]
    mem = torch.randn(b, m, d)
    mem_mask = torch.arange(m)[None] < torch.tensor(memory)[:, None]
    offsets = [s for s in range(-cfg.ia.memory_before, cfg.ia.memory_after + 1) if s != 0]
    seconds = torch.tensor(offsets).repeat_interleave(cfg.ia.persons_per_second)[:m]
    return feats, batch, obj, obj_mask, mem, mem_mask, seconds.expand(b, m).clone()


def randomise(module: nn.Module) -> None:
    """Non-zero everywhere (zero-init projections would hide every interaction)."""
    with torch.no_grad():
        for p in module.parameters():
            p.normal_(0, 0.05)


def make_head(cfg: ModelConfig, structure: str, randomised: bool = True) -> AIAHead:
    head = AIAHead(cfg.replace(ia={"structure": structure})).eval()
    if randomised:
        randomise(head)
    return head


@pytest.mark.parametrize(
    ("structure", "expected"), [("serial", 38.56e6), ("dense", 38.57e6), ("parallel", 45.90e6)]
)
def test_r50_ia_parameter_counts_match_reference(structure: str, expected: float) -> None:
    cfg = preset("r50_4x16").replace(ia={"structure": structure})
    with torch.device("meta"):
        ia = InteractionAggregation(cfg.ia, cfg.feature_dim)
    assert abs(count(ia) - expected) / expected < 0.005


def test_r50_classifier_parameter_count_matches_reference() -> None:
    cfg = preset("r50_4x16")
    assert abs(count(Classifier(cfg.classifier, cfg.feature_dim)) - 3.49e6) / 3.49e6 < 0.005


@pytest.mark.parametrize("structure", STRUCTURES)
def test_each_block_is_identity_or_shortcut_at_init(tiny_cfg, structure: str) -> None:
    head = make_head(tiny_cfg, structure, randomised=False)
    assert head.ia is not None
    inputs = head_inputs(tiny_cfg, [3, 2], [2, 4], [6, 0])
    contexts = head.contexts(*inputs)
    x = torch.randn(5, tiny_cfg.ia.dim_inner)
    for block, kind in zip(head.ia.blocks, head.ia.kinds, strict=True):
        torch.testing.assert_close(block(x, contexts[kind.value]), block.shortcut(x))


def test_dense_equals_serial_at_init(tiny_cfg) -> None:
    serial = make_head(tiny_cfg, "serial", randomised=False)
    dense = make_head(tiny_cfg, "dense", randomised=False)
    dense.load_state_dict(serial.state_dict(), strict=False)
    inputs = head_inputs(tiny_cfg, [3, 1], [2, 0], [5, 9])
    torch.testing.assert_close(dense(*inputs), serial(*inputs), atol=1e-5, rtol=0)


@pytest.mark.parametrize("structure", STRUCTURES)
@pytest.mark.parametrize("persons", [[0], [1], [4, 1, 3]])
def test_padding_slots_change_nothing_with_masks(tiny_cfg, structure: str, persons) -> None:
    head = make_head(tiny_cfg, structure)
    b = len(persons)
    small = head_inputs(tiny_cfg, persons, [2] * b, [4] * b)
    feats, batch, obj, obj_mask, mem, mem_mask, seconds = small
    d = tiny_cfg.feature_dim
    # 3 more object slots and 6 more memory slots, all padding full of noise
    obj2 = torch.cat([obj, torch.randn(b, 3, d)], 1)
    obj_mask2 = torch.cat([obj_mask, torch.zeros(b, 3, dtype=torch.bool)], 1)
    mem2 = torch.cat([mem, torch.randn(b, 6, d)], 1)
    mem_mask2 = torch.cat([mem_mask, torch.zeros(b, 6, dtype=torch.bool)], 1)
    seconds2 = torch.cat([seconds, torch.full((b, 6), 2)], 1)
    out = head(*small)
    padded = head(feats, batch, obj2, obj_mask2, mem2, mem_mask2, seconds2)
    assert out.shape == (sum(persons), tiny_cfg.classifier.num_classes)
    torch.testing.assert_close(padded, out, atol=1e-5, rtol=0)


@pytest.mark.parametrize("structure", STRUCTURES)
def test_reordering_persons_objects_memory_changes_nothing(tiny_cfg, structure: str) -> None:
    head = make_head(tiny_cfg, structure)
    feats, batch, obj, obj_mask, mem, mem_mask, seconds = head_inputs(
        tiny_cfg, [3, 2], [3, 3], [7, 5]
    )
    out = head(feats, batch, obj, obj_mask, mem, mem_mask, seconds)
    p = torch.tensor([4, 1, 3, 0, 2])  # interleaves the two clips
    o = torch.tensor([2, 0, 1])
    m = torch.randperm(mem.shape[1])
    shuffled = head(feats[p], batch[p], obj[:, o], obj_mask[:, o], mem[:, m], mem_mask[:, m],
                    seconds[:, m])
    torch.testing.assert_close(shuffled, out[p], atol=1e-5, rtol=0)


def test_masks_off_lets_padding_take_part(tiny_cfg) -> None:
    cfg = tiny_cfg.replace(ia={"use_masks": False})
    head = make_head(cfg, "serial")
    inputs = head_inputs(cfg, [2], [2], [3])
    out = head(*inputs)
    masked = AIAHead(tiny_cfg).eval()
    masked.load_state_dict(head.state_dict())
    assert not torch.allclose(masked(*inputs), out, atol=1e-4)
    # padding is zeros (after reduction), so its content does not matter, only its presence
    feats, batch, obj, obj_mask, mem, mem_mask, seconds = inputs
    torch.testing.assert_close(
        head(feats, batch, obj * obj_mask[..., None], obj_mask, mem, mem_mask, seconds), out
    )


@pytest.mark.parametrize("structure", STRUCTURES)
@pytest.mark.parametrize("use_masks", [True, False])
def test_memory_projected_once_per_clip_equals_per_person(
    tiny_cfg, structure: str, use_masks: bool
) -> None:
    cfg = tiny_cfg.replace(ia={"use_masks": use_masks})
    head = make_head(cfg, structure)
    inputs = head_inputs(cfg, [3, 1, 2], [2, 0, 5], [9, 4, 0])
    feats = inputs[0]
    contexts = head.contexts(*inputs)
    assert head.ia is not None
    ours = head.classifier(feats + head.ia(feats, contexts))
    reference = head.classifier(feats + head.ia(feats, {k: per_person(c)
                                                        for k, c in contexts.items()}))
    torch.testing.assert_close(ours, head(*inputs))
    torch.testing.assert_close(reference, ours, atol=1e-5, rtol=0)


@pytest.mark.parametrize("persons", [0, 1, 5])
def test_empty_memory_and_no_objects(tiny_cfg, persons: int) -> None:
    head = make_head(tiny_cfg, "serial")
    feats = torch.randn(persons, tiny_cfg.feature_dim)
    batch = torch.zeros(persons, dtype=torch.long)
    out = head(feats, batch, *no_objects(tiny_cfg, 1), *empty_memory(tiny_cfg, 1))
    assert out.shape == (persons, 80)
    assert torch.isfinite(out).all()


def test_blocks_without_slots_pass_their_shortcut(tiny_cfg) -> None:
    """No objects: O blocks add nothing, so an O-only head is its shortcut chain."""
    cfg = tiny_cfg.replace(ia={"blocks": ["O"]})
    head = make_head(cfg, "serial")
    assert head.ia is not None
    feats = torch.randn(2, cfg.feature_dim)
    out = head(feats, torch.zeros(2, dtype=torch.long), *no_objects(cfg, 1),
               *empty_memory(cfg, 1))
    block = head.ia.blocks[0]
    expected = head.classifier(feats + block.shortcut(head.ia.query_reduce(feats)))
    torch.testing.assert_close(out, expected)


def test_person_slots_are_capped_per_clip_target_included(tiny_cfg) -> None:
    cfg = tiny_cfg.replace(ia={"max_persons": 2, "blocks": ["P"]})
    head = make_head(cfg, "serial")
    feats = torch.randn(4, cfg.feature_dim)
    batch = torch.zeros(4, dtype=torch.long)
    ctx = head.person_context(feats, batch)
    expected = torch.tensor([[1, 1, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0], [1, 1, 0, 1]]).bool()
    assert torch.equal(ctx.mask, expected)


def test_other_clips_persons_are_never_attended(tiny_cfg) -> None:
    cfg = tiny_cfg.replace(ia={"blocks": ["P"]})
    head = make_head(cfg, "serial")
    feats, batch = torch.randn(3, cfg.feature_dim), torch.tensor([0, 0, 1])
    objs, mem = no_objects(cfg, 2), empty_memory(cfg, 2)
    out = head(feats, batch, *objs, *mem)
    changed = feats.clone()
    changed[2] += 5.0  # the only person of clip 1
    torch.testing.assert_close(head(changed, batch, *objs, *mem)[:2], out[:2])


@pytest.mark.parametrize("current", [True, False])
def test_memory_current_decides_whether_m_reads_the_clips_own_persons(tiny_cfg,
                                                                       current: bool) -> None:
    """The reference's M blocks read the key second's own persons; with `memory_current` off
    (Table 1's "without P") a partner reaches a person through P blocks only."""
    cfg = tiny_cfg.replace(ia={"blocks": ["M"], "memory_current": current})
    head = make_head(cfg, "serial")
    feats, batch = torch.randn(2, cfg.feature_dim), torch.tensor([0, 0])
    objs = no_objects(cfg, 1)
    memory = list(head_inputs(cfg, [2], [0], [3]))[4:]  # three neighbour slots
    out = head(feats, batch, *objs, *memory)
    partner = feats.clone()
    partner[1] += 5.0
    changed = head(partner, batch, *objs, *memory)[0]
    assert torch.allclose(changed, out[0], atol=1e-6) is not current


def test_memory_outside_the_window_is_ignored(tiny_cfg) -> None:
    head = make_head(tiny_cfg, "serial")
    inputs = list(head_inputs(tiny_cfg, [2], [1], [3]))
    out = head(*inputs)
    inputs[4] = torch.cat([inputs[4], torch.randn(1, 2, tiny_cfg.feature_dim)], 1)
    inputs[5] = torch.cat([inputs[5], torch.ones(1, 2, dtype=torch.bool)], 1)
    far = tiny_cfg.ia.memory_after + 1
    inputs[6] = torch.cat([inputs[6], torch.tensor([[far, 0]])], 1)  # 0: the clip's own second
    torch.testing.assert_close(head(*inputs), out, atol=1e-5, rtol=0)


def test_memory_carries_no_gradient_current_persons_do(tiny_cfg) -> None:
    cfg = tiny_cfg.replace(ia={"blocks": ["M"]})
    head = make_head(cfg, "serial").train()
    feats, batch, obj, obj_mask, mem, mem_mask, seconds = head_inputs(cfg, [3], [0], [4])
    feats.requires_grad_(True)
    out = head(feats, batch, obj, obj_mask, mem, mem_mask, seconds)
    (grad,) = torch.autograd.grad(out.square().sum(), feats)
    assert grad.abs().sum() > 0  # the query path trains the current persons' features
    # the same computation with the memory copy of the current persons detached by hand
    assert head.ia is not None
    ctx = head.contexts(feats.detach(), batch, obj, obj_mask, mem, mem_mask, seconds)
    manual = head.classifier(feats + head.ia(feats, ctx))
    (expected,) = torch.autograd.grad(manual.square().sum(), feats)
    torch.testing.assert_close(grad, expected)
    # the memory path does shape the output: a differentiable memory input gets a gradient,
    # so a missing detach of the current persons would have shown above
    mem_leaf = mem.clone().requires_grad_(True)
    out = head(feats.detach(), batch, obj, obj_mask, mem_leaf, mem_mask, seconds)
    (grad_mem,) = torch.autograd.grad(out.square().sum(), mem_leaf)
    assert grad_mem.abs().sum() > 0


@pytest.mark.parametrize("structure", STRUCTURES)
def test_train_and_eval_agree_without_dropout(tiny_cfg, structure: str) -> None:
    head = make_head(tiny_cfg, structure)
    inputs = head_inputs(tiny_cfg, [2, 3], [1, 2], [4, 8])
    torch.testing.assert_close(head.train()(*inputs), head.eval()(*inputs))


def test_baseline_without_blocks_is_classifier_only(tiny_cfg) -> None:
    cfg = tiny_cfg.replace(ia={"blocks": []})
    head = AIAHead(cfg).eval()
    inputs = head_inputs(cfg, [2], [1], [2])
    assert head.ia is None
    torch.testing.assert_close(head(*inputs), head.classifier(inputs[0]))
