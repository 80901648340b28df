from __future__ import annotations

import pytest
import torch

from model.network import AIA, build_aia, empty_memory


def batch(cfg, persons: list[int], objects: list[int]):
    b = len(persons)
    clip = torch.randint(0, 256, (b, cfg.input.frames, 96, 128, 3), dtype=torch.uint8)

    def boxes(counts: list[int]) -> torch.Tensor:
        rows = [[i, 5 + 7 * j, 8, 60 + 7 * j, 90] for i, c in enumerate(counts) for j in range(c)]
        return torch.tensor(rows, dtype=torch.float32).view(-1, 5)

    return clip, boxes(persons), boxes(objects)


@pytest.mark.parametrize("persons", [[0], [1], [3, 2]])
def test_joined_model_outputs(tiny_cfg, persons: list[int]) -> None:
    model = build_aia(tiny_cfg).eval()
    clip, person_boxes, object_boxes = batch(tiny_cfg, persons, [2] * len(persons))
    out = model(clip, person_boxes, object_boxes, *empty_memory(tiny_cfg, len(persons)))
    n = sum(persons)
    assert out.logits.shape == (n, tiny_cfg.classifier.num_classes)
    assert out.person_features.shape == (n, tiny_cfg.feature_dim)


def test_joined_model_equals_its_two_graphs(tiny_cfg) -> None:
    model = build_aia(tiny_cfg).eval()
    clip, person_boxes, object_boxes = batch(tiny_cfg, [2, 1], [3, 1])
    memory = (torch.randn(2, 6, tiny_cfg.feature_dim), torch.ones(2, 6, dtype=torch.bool),
              torch.tensor([[-2, -1, 1, 2, 3, 4]] * 2))
    joined = model(clip, person_boxes, object_boxes, *memory)
    persons = model.features(clip, person_boxes)
    objects = model.features(clip, object_boxes)
    obj = torch.stack([torch.cat([objects[:3]]), torch.cat([objects[3:], torch.zeros(2, 320)])])
    obj_mask = torch.tensor([[1, 1, 1], [1, 0, 0]], dtype=torch.bool)
    logits = model.head(persons, person_boxes[:, 0].long(), obj, obj_mask, *memory)
    torch.testing.assert_close(joined.person_features, persons)
    torch.testing.assert_close(joined.logits, logits)


def test_train_mode_matches_eval_mode_apart_from_dropout(tiny_cfg) -> None:
    model = build_aia(tiny_cfg)
    clip, person_boxes, object_boxes = batch(tiny_cfg, [2], [1])
    mem = empty_memory(tiny_cfg, 1)
    torch.testing.assert_close(model.train()(clip, person_boxes, object_boxes, *mem).logits,
                               model.eval()(clip, person_boxes, object_boxes, *mem).logits)


def test_gradients_reach_backbone_and_head(tiny_cfg) -> None:
    model: AIA = build_aia(tiny_cfg).train()
    clip, person_boxes, object_boxes = batch(tiny_cfg, [2, 2], [1, 2])
    memory = torch.randn(2, 3, tiny_cfg.feature_dim)  # as the bank returns it: no grad
    out = model(clip, person_boxes, object_boxes, memory, torch.ones(2, 3, dtype=torch.bool),
                torch.tensor([[-1, 1, 2]] * 2))
    out.logits.square().sum().backward()
    assert model.features.backbone.slow_stem[0].weight.grad.abs().sum() > 0
    assert model.features.backbone.fast_stem[0].weight.grad.abs().sum() > 0
    assert model.head.classifier.logits.weight.grad.abs().sum() > 0
    assert not memory.requires_grad


@pytest.mark.gpu
def test_cuda_matches_cpu_and_bf16_autocast_trains(tiny_cfg) -> None:
    model = build_aia(tiny_cfg).eval()
    clip, person_boxes, object_boxes = batch(tiny_cfg, [3, 1], [2, 2])
    mem = empty_memory(tiny_cfg, 2)
    cpu = model(clip, person_boxes, object_boxes, *mem).logits
    gpu_model = model.cuda()
    args = [t.cuda() for t in (clip, person_boxes, object_boxes, *mem)]
    torch.testing.assert_close(gpu_model(*args).logits.cpu(), cpu, atol=1e-4, rtol=1e-4)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = gpu_model.train()(*args)
    out.logits.float().square().sum().backward()
    assert torch.isfinite(out.logits.float()).all()
    assert gpu_model.features.backbone.slow_stem[0].weight.grad.isfinite().all()
