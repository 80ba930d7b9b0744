"""Hierarchical softmax: a distribution over classes, gradients, trivial trees, Huffman paths."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from nnbasics.nn.hsoftmax import (FlatSoftmax, HierarchicalSoftmax, Tree, balanced_tree, huffman_tree,
                               similarity_tree, zipf_frequencies)


def _random_layer(tree: Tree, d: int = 5, seed: int = 0) -> HierarchicalSoftmax:
    g = torch.Generator().manual_seed(seed)
    hs = HierarchicalSoftmax(d, tree).double()
    with torch.no_grad():
        hs.weight.copy_(torch.randn(hs.weight.shape, generator=g, dtype=torch.float64))
        hs.bias.copy_(torch.randn(hs.bias.shape, generator=g, dtype=torch.float64))
    return hs


TREES = {
    "balanced7": lambda: balanced_tree(7),
    "balanced16": lambda: balanced_tree(16),
    "huffman_zipf": lambda: huffman_tree(zipf_frequencies(11)),
    "similarity": lambda: similarity_tree(torch.randn(9, 4, generator=torch.Generator().manual_seed(3))),
}


@pytest.mark.parametrize("name", sorted(TREES))
def test_class_probabilities_sum_to_one_and_path_equals_flat(name):
    tree = TREES[name]()
    hs = _random_layer(tree)
    h = torch.randn(8, 5, dtype=torch.float64)
    logp = hs.log_probs(h)
    torch.testing.assert_close(logp.exp().sum(1), torch.ones(8, dtype=torch.float64), rtol=0, atol=1e-12)
    for c in range(tree.num_classes):  # the path-only O(log C) form agrees with the flat form, class by class
        y = torch.full((8,), c)
        torch.testing.assert_close(hs.log_prob(h, y), logp[:, c], rtol=0, atol=1e-12)


def test_path_probability_is_the_product_of_branch_probabilities():
    tree = balanced_tree(4)  # root splits {0,1} | {2,3}
    hs = _random_layer(tree, d=3)
    h = torch.randn(2, 3, dtype=torch.float64)
    z = hs.node_logits(h)
    root = tree.root
    inner = tree.left[root]  # the node over classes 0 and 1
    expected = torch.sigmoid(z[:, root]) * torch.sigmoid(-z[:, inner])  # left at the root, right below
    assert tree.paths[1] == [(root, 1), (inner, -1)]
    torch.testing.assert_close(hs.log_prob(h, torch.tensor([1, 1])).exp(), expected)


@pytest.mark.parametrize("name", sorted(TREES))
def test_gradients_match_autograd_on_the_flat_reference(name):
    tree = TREES[name]()
    hs = _random_layer(tree, seed=1)
    h = torch.randn(10, 5, dtype=torch.float64, requires_grad=True)
    y = torch.randint(0, tree.num_classes, (10,), generator=torch.Generator().manual_seed(2))
    # flat reference, written independently: every node's logit, then sum the log-sigmoids of
    # the path of each target in a Python loop over classes and nodes
    W, b = hs.weight.detach().clone().requires_grad_(), hs.bias.detach().clone().requires_grad_()
    hr = h.detach().clone().requires_grad_()
    z = hr @ W.t() + b
    ref = torch.stack([sum(F.logsigmoid(s * z[i, n]) for n, s in tree.paths[int(y[i])]) if tree.paths[int(y[i])]
                       else z.new_zeros(()) for i in range(10)])
    (-ref.mean()).backward()
    hs.loss(h, y).backward()
    torch.testing.assert_close(hs.weight.grad, W.grad, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(hs.bias.grad, b.grad, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(h.grad, hr.grad, rtol=1e-10, atol=1e-12)


def test_gradcheck_float64():
    hs = _random_layer(huffman_tree([5, 1, 1, 2, 8, 3]), d=3)
    y = torch.tensor([0, 4, 2, 5])
    h = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    w = hs.weight.detach().clone().requires_grad_()
    b = hs.bias.detach().clone().requires_grad_()
    loss = lambda h, w, b: torch.func.functional_call(hs, {"weight": w, "bias": b}, (h, y))  # noqa: E731
    assert torch.autograd.gradcheck(loss, (h, w, b))


def test_two_classes_is_the_sigmoid_and_the_two_way_softmax():
    hs = _random_layer(balanced_tree(2), d=4)
    h = torch.randn(6, 4, dtype=torch.float64)
    z = hs.node_logits(h)[:, 0]
    logp = hs.log_probs(h)
    torch.testing.assert_close(logp[:, 0], F.logsigmoid(z))  # class 0 = "left" = the logistic unit
    torch.testing.assert_close(logp, F.log_softmax(torch.stack([z, torch.zeros_like(z)], 1), dim=1))
    y = torch.tensor([0, 1, 1, 0, 1, 0])
    torch.testing.assert_close(hs.loss(h, y), F.binary_cross_entropy_with_logits(z, (y == 0).double()))


def test_one_class_is_certain():
    hs = HierarchicalSoftmax(3, balanced_tree(1))
    h = torch.randn(4, 3)
    assert hs.weight.shape == (0, 3)
    torch.testing.assert_close(hs.log_probs(h), torch.zeros(4, 1))
    torch.testing.assert_close(hs.loss(h, torch.zeros(4, dtype=torch.long)), torch.tensor(0.0))
    assert hs.predict(h).tolist() == [0, 0, 0, 0]


def test_huffman_gives_frequent_classes_shorter_paths():
    f = [0.4, 0.3, 0.2, 0.1]
    assert huffman_tree(f).depths == [1, 2, 3, 3]
    assert huffman_tree(f).expected_depth(f) == pytest.approx(1.9)
    assert balanced_tree(4).expected_depth(f) == pytest.approx(2.0)
    zipf = zipf_frequencies(1000)
    huff, bal = huffman_tree(zipf), balanced_tree(1000)
    assert set(bal.depths) <= {math.floor(math.log2(1000)), math.ceil(math.log2(1000))}
    d = torch.tensor(huff.depths)
    assert torch.all(d[:-1] <= d[1:])  # frequencies fall with c, path lengths never shrink
    entropy = float(-(zipf * zipf.log2()).sum())
    assert entropy <= huff.expected_depth(zipf) < entropy + 1  # Huffman's bound
    assert huff.expected_depth(zipf) < bal.expected_depth(zipf) - 1
    assert sum(2.0 ** -L for L in huff.depths) == pytest.approx(1.0)  # a full binary tree (Kraft)


def test_greedy_descent_follows_the_majority_branch_and_exact_is_the_argmax():
    tree = balanced_tree(13)
    hs = _random_layer(tree, d=5, seed=4)
    h = torch.randn(64, 5, dtype=torch.float64)
    z = hs.node_logits(h)
    # the greedy leaf is the one class whose every decision on its path has probability >= 1/2
    agree = torch.stack([torch.stack([s * z[:, n] >= 0 for n, s in tree.paths[c]]).all(0)
                         for c in range(13)], dim=1)
    assert torch.all(agree.sum(1) == 1)
    greedy = hs.predict(h)
    assert torch.equal(greedy, agree.double().argmax(1))
    logp = hs.log_probs(h)
    assert torch.equal(hs.predict(h, exact=True), logp.argmax(1))
    confident = logp.max(1).values > math.log(0.5)  # a leaf above 1/2 is found greedily
    assert confident.any()
    assert torch.equal(greedy[confident], logp.argmax(1)[confident])


def test_flat_softmax_baseline_is_cross_entropy():
    torch.manual_seed(0)
    flat = FlatSoftmax(4, 6)
    h, y = torch.randn(5, 4), torch.randint(0, 6, (5,))
    torch.testing.assert_close(flat.loss(h, y), F.cross_entropy(flat.linear(h), y))
    torch.testing.assert_close(flat.log_probs(h).exp().sum(1), torch.ones(5))


def test_bad_trees_are_refused():
    with pytest.raises(ValueError):
        Tree(3, [-1], [-2], 0)  # two classes in a tree that claims three
    with pytest.raises(ValueError):
        Tree(3, [-1, 0], [-1, -3], 1)  # class 0 twice, class 1 missing
    with pytest.raises(ValueError):
        huffman_tree([1.0, -1.0])
