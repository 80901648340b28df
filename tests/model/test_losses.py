from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from model.config import AVA_GROUPS, ClassGroup, LossKind
from model.losses import action_loss, sigmoid_focal, softmax_focal
from model.postprocess import action_scores


def test_softmax_focal_with_gamma_zero_is_cross_entropy() -> None:
    logits = torch.randn(6, 14)
    target = torch.randint(0, 14, (6,))
    onehot = F.one_hot(target, 14).float()
    torch.testing.assert_close(softmax_focal(logits, onehot, 0.0), F.cross_entropy(logits, target))


def test_softmax_focal_ignores_rows_without_a_label_and_down_weights_easy_rows() -> None:
    logits = torch.tensor([[4.0, 0.0], [0.0, 0.0], [9.0, 9.0]])
    targets = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 0.0]])
    p_easy = torch.softmax(logits[0], 0)[0]
    expected = (-((1 - p_easy) ** 2) * p_easy.log() + -(0.5**2) * torch.tensor(0.5).log()) / 2
    torch.testing.assert_close(softmax_focal(logits, targets, 2.0), expected)


def test_sigmoid_focal_with_gamma_zero_is_bce() -> None:
    logits, targets = torch.randn(5, 7), torch.randint(0, 2, (5, 7)).float()
    torch.testing.assert_close(
        sigmoid_focal(logits, targets, 0.0), F.binary_cross_entropy_with_logits(logits, targets)
    )


def test_action_loss_weights_groups() -> None:
    logits, targets = torch.randn(4, 80), torch.zeros(4, 80)
    targets[:, 11] = 1  # stand
    targets[0, 16] = targets[2, 79] = 1
    out = action_loss(logits, targets, AVA_GROUPS)
    expected = (
        1.2 * softmax_focal(logits[:, :14], targets[:, :14], 2)
        + 49 * sigmoid_focal(logits[:, 14:63], targets[:, 14:63], 2)
        + 17 * sigmoid_focal(logits[:, 63:], targets[:, 63:], 2)
    )
    torch.testing.assert_close(out.total, expected)
    assert set(out.groups) == {"pose", "object", "person"}


def test_action_loss_with_no_persons_is_zero_and_differentiable() -> None:
    logits = torch.zeros(0, 80, requires_grad=True)
    out = action_loss(logits, torch.zeros(0, 80), AVA_GROUPS)
    out.total.backward()
    assert out.total.item() == 0.0
    assert logits.grad is not None


@pytest.mark.parametrize("n", [0, 1, 5])
def test_scores_softmax_pose_sigmoid_rest(n: int) -> None:
    logits = torch.randn(n, 80)
    scores = torch.from_numpy(action_scores(logits.numpy(), AVA_GROUPS))
    assert scores.shape == (n, 80)
    torch.testing.assert_close(scores[:, :14].sum(1), torch.ones(n))
    torch.testing.assert_close(scores[:, 14:], logits[:, 14:].sigmoid())


def test_scores_follow_custom_groups() -> None:
    groups = (
        ClassGroup("a", 1, 2, LossKind.SIGMOID, 1.0),
        ClassGroup("b", 3, 5, LossKind.SOFTMAX, 1.0),
    )
    scores = torch.from_numpy(action_scores(np.random.randn(3, 5), groups))
    torch.testing.assert_close(scores[:, 2:].sum(1), torch.ones(3))


@pytest.mark.parametrize("n", [0, 1, 7])
def test_scores_equal_torch_softmax_and_sigmoid(n: int) -> None:
    logits = torch.randn(n, 80) * 8  # large logits: softmax/sigmoid must not overflow
    expected = torch.cat([logits[:, :14].softmax(1), logits[:, 14:].sigmoid()], 1).numpy()
    found = action_scores(logits.numpy(), AVA_GROUPS)
    assert found.dtype == np.float32
    np.testing.assert_allclose(found, expected, atol=1e-6)
