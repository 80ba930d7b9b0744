"""Image grids, confident mistakes, first-layer weights and the confusion matrix."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nnbasics.viz import images as vis
from nnbasics.viz.figures import figure_to_array, save_figure


def test_class_samples_grid_has_a_row_per_class_and_per_class_columns(tmp_path):
    torch.manual_seed(0)
    x = torch.randn(40, 1, 8, 8)
    y = torch.arange(40) % 4
    y[y == 3] = 2  # class 3 absent: its row stays blank
    fig = vis.class_samples(x, y, classes=["a", "b", "c", "d"], per_class=6)
    assert vis.grid_shape(fig) == (4, 6)
    mosaic = fig.axes[0].images[0].get_array()
    assert mosaic.shape == (4 * (8 + 1) + 1, 6 * (8 + 1) + 1)  # 4 x 6 cells of 8 x 8, 1-pixel borders
    first_of_b = x[torch.nonzero(y == 1).flatten()[0], 0]
    torch.testing.assert_close(torch.as_tensor(vis.grid_cell(fig, 6)).float(), first_of_b)  # row "b", column 0
    assert all(torch.isnan(torch.as_tensor(vis.grid_cell(fig, 18 + j))).all() for j in range(6))  # class d: blank
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["a", "b", "c", "d"]
    path = save_figure(fig, tmp_path / "samples.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_confident_mistakes_are_wrong_and_sorted_by_confidence():
    logits = torch.tensor([[5.0, 0.0, 0.0],   # right
                           [0.0, 3.0, 0.0],   # wrong, medium confidence
                           [0.0, 0.0, 9.0],   # wrong, most confident
                           [1.0, 1.1, 0.0],   # wrong, least confident
                           [0.0, 4.0, 0.0]])  # right
    y = torch.tensor([0, 0, 1, 2, 1])
    idx, pred, conf = vis.confident_mistakes(logits, y, k=10)
    assert idx.tolist() == [2, 1, 3]
    assert pred.tolist() == [2, 1, 1]
    assert torch.all(conf[:-1] >= conf[1:])
    x = torch.randn(5, 1, 6, 6)
    fig = vis.mistakes_grid(x, y, logits, classes=["zero", "one", "two"], k=2, cols=4)
    assert vis.grid_shape(fig) == (1, 2)
    assert [t.get_text() for t in fig.axes[0].texts] == [f"one->two ({float(conf[0]):.2f})", f"zero->one ({float(conf[1]):.2f})"]
    torch.testing.assert_close(torch.as_tensor(vis.grid_cell(fig, 0)).float(), x[2, 0])


def test_first_layer_weights_show_each_unit_as_an_image():
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(784, 20), nn.ReLU(), nn.Linear(20, 10))
    fig = vis.first_layer_weights(mlp, (1, 28, 28), units=20, cols=8)
    assert vis.grid_shape(fig) == (3, 8)
    torch.testing.assert_close(torch.as_tensor(vis.grid_cell(fig, 7)).float(), mlp[1].weight[7].detach().reshape(28, 28))
    assert torch.isnan(torch.as_tensor(vis.grid_cell(fig, 20))).all()  # 20 units: the last 4 cells are blank
    lo, hi = fig.axes[0].images[0].get_clim()
    assert lo == -hi  # diverging map centred at 0
    rgb = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 6))
    fig = vis.first_layer_weights(rgb, (3, 32, 32), units=64, cols=3)
    assert vis.grid_shape(fig) == (2, 3)
    img = vis.grid_cell(fig, 0)
    assert img.shape == (32, 32, 3) and float(img.min()) == 0.0 and float(img.max()) == 1.0
    w0 = rgb[1].weight[0].detach().reshape(3, 32, 32).permute(1, 2, 0)
    torch.testing.assert_close(torch.as_tensor(img).float(), (w0 - w0.min()) / (w0.max() - w0.min()))
    with pytest.raises(ValueError):
        vis.first_layer_weights(mlp, (3, 32, 32))


def test_confusion_matrix_equals_a_hand_count():
    target = torch.tensor([0, 0, 1, 1, 1, 2, 2, 0, 2, 1])
    pred = torch.tensor([0, 1, 1, 1, 2, 2, 0, 0, 2, 1])
    by_hand = torch.zeros(3, 3, dtype=torch.long)
    for t, p in zip(target.tolist(), pred.tolist()):
        by_hand[t, p] += 1
    cm = vis.confusion_matrix(pred, target, 3)
    assert torch.equal(cm, by_hand)
    assert cm.tolist() == [[2, 1, 0], [0, 3, 1], [1, 0, 2]]
    fig = vis.confusion_figure(cm, classes=["a", "b", "c"])
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts == [str(v) for v in cm.flatten().tolist()]
    assert "0.7000" in fig.axes[0].get_title()


def test_save_figure_logs_to_tensorboard(tmp_path):
    from torch.utils.tensorboard import SummaryWriter
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    fig = vis.image_grid(torch.rand(4, 3, 5, 5), 2, 2)
    with SummaryWriter(str(tmp_path / "tb")) as writer:
        save_figure(fig, tmp_path / "grid.png", writer=writer, tag="v1/grid")
    acc = EventAccumulator(str(tmp_path / "tb"))
    acc.Reload()
    assert acc.Tags()["images"] == ["v1/grid"]
    event = acc.Images("v1/grid")[0]
    h, w, _ = figure_to_array(fig).shape
    assert (event.height, event.width) == (h, w)
