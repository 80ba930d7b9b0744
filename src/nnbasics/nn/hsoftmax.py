"""Hierarchical softmax (Morin and Bengio 2005; Mikolov et al. 2013).

A flat softmax over C classes scores every class for every sample: O(C d) per sample. The
hierarchical softmax puts the classes at the leaves of a binary tree with C - 1 internal nodes;
node n holds a logistic classifier (v_n, b_n) that sends a sample left with probability
sigma(z_n), z_n = v_n . h + b_n, and right with sigma(-z_n) = 1 - sigma(z_n). The probability of
a class is the product along its path from the root, so

    log p(c | h) = sum_{(n, s) on path(c)} log sigma(s * z_n),   s = +1 (left) or -1 (right).

At every node the two branch probabilities sum to 1, so the leaf probabilities do too. The loss
-log p(y | h) touches only the L_y nodes on the path of the target: O(L_y d) per sample, with
L = ceil(log2 C) in a balanced tree, and a shorter *expected* length in a Huffman tree built from
class frequencies (frequent classes near the root), which is what word2vec uses.

Trees: ``balanced_tree(C)``, ``huffman_tree(freqs)``, ``similarity_tree(vectors)`` (recursive
median split along the top principal direction of per-class vectors: similar classes share
subtrees, Mnih and Hinton 2008's idea of a tree that the node classifiers can actually learn).

Prediction. The exact most probable class needs every leaf's probability: O(C d)
(``predict(h, exact=True)``). The O(log C) way, and the default here, is greedy descent: from
the root take the more probable branch at each node. It returns the leaf whose every decision
has probability >= 1/2, which is the most probable leaf whenever that leaf's probability exceeds
1/2 (then no sibling subtree can hold more mass) and may differ from it otherwise.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn


# ----------------------------------------------------------------------------------------------
# Trees
# ----------------------------------------------------------------------------------------------


@dataclass
class Tree:
    """A full binary tree over ``num_classes`` leaves. Internal node ``n`` (0 .. C-2) has children
    ``left[n]`` and ``right[n]``: an internal node index >= 0, or a leaf ``-(c + 1)`` for class c.
    ``root`` is the root's index (-1, a single leaf, when C = 1)."""

    num_classes: int
    left: list[int]
    right: list[int]
    root: int

    def __post_init__(self) -> None:
        C = self.num_classes
        if C < 1 or len(self.left) != C - 1 or len(self.right) != C - 1:
            raise ValueError(f"a full binary tree over {C} classes has {max(C - 1, 0)} internal nodes")
        paths: list[list[tuple[int, int]] | None] = [None] * C
        stack: list[tuple[int, list[tuple[int, int]]]] = [(self.root, [])]
        while stack:
            node, path = stack.pop()
            if node < 0:
                c = -node - 1
                if paths[c] is not None:
                    raise ValueError(f"class {c} appears twice in the tree")
                paths[c] = path
                continue
            stack.append((self.left[node], path + [(node, 1)]))
            stack.append((self.right[node], path + [(node, -1)]))
        missing = [c for c, p in enumerate(paths) if p is None]
        if missing:
            raise ValueError(f"classes {missing[:5]} are not leaves of the tree")
        self.paths: list[list[tuple[int, int]]] = paths  # type: ignore[assignment]

    @property
    def depths(self) -> list[int]:
        """Path length (number of internal nodes) from the root to each class."""
        return [len(p) for p in self.paths]

    @property
    def max_depth(self) -> int:
        return max(self.depths)

    def expected_depth(self, freqs) -> float:
        """Mean path length when classes occur with (unnormalized) frequencies ``freqs``."""
        f = torch.as_tensor(freqs, dtype=torch.float64)
        return float((f * torch.tensor(self.depths, dtype=torch.float64)).sum() / f.sum())

    def tensors(self) -> dict[str, Tensor]:
        """Padded path tables: ``nodes`` (C x D long), ``signs`` (C x D float: +1 left, -1 right,
        0 padding), ``lengths`` (C), and for the flat reference the sparse path-membership
        matrices ``pos``/``neg`` (C x (C-1): 1 where the class goes left/right at the node)."""
        C, D = self.num_classes, max(self.max_depth, 1)
        nodes = torch.zeros(C, D, dtype=torch.long)
        signs = torch.zeros(C, D)
        for c, path in enumerate(self.paths):
            if path:
                nodes[c, :len(path)] = torch.tensor([n for n, _ in path])
                signs[c, :len(path)] = torch.tensor([float(s) for _, s in path])
        mask = signs != 0
        cls = torch.arange(C).unsqueeze(1).expand(C, D)

        def membership(sel: Tensor) -> Tensor:
            idx = torch.stack([cls[sel], nodes[sel]])
            return torch.sparse_coo_tensor(idx, torch.ones(idx.shape[1]), (C, C - 1), check_invariants=True).coalesce()

        return {"nodes": nodes, "signs": signs, "lengths": torch.tensor(self.depths, dtype=torch.long),
                "pos": membership(mask & (signs > 0)), "neg": membership(mask & (signs < 0)), "left": torch.tensor(self.left, dtype=torch.long),
                "right": torch.tensor(self.right, dtype=torch.long)}


def _from_merges(num_classes: int, pairs: list[tuple[int, int]]) -> Tree:
    """A tree from its internal nodes listed children first (the root last)."""
    left, right = [p[0] for p in pairs], [p[1] for p in pairs]
    return Tree(num_classes, left, right, len(pairs) - 1 if pairs else -1)


def balanced_tree(num_classes: int) -> Tree:
    """Classes 0..C-1 split recursively into halves: every path has floor or ceil of log2 C nodes."""
    pairs: list[tuple[int, int]] = []

    def build(lo: int, hi: int) -> int:
        if hi - lo == 1:
            return -(lo + 1)
        mid = (lo + hi + 1) // 2  # the left half gets the extra class
        a, b = build(lo, mid), build(mid, hi)
        pairs.append((a, b))
        return len(pairs) - 1

    build(0, num_classes)
    return _from_merges(num_classes, pairs)


def huffman_tree(freqs) -> Tree:
    """Huffman's construction: repeatedly merge the two least frequent subtrees. Frequent classes
    end near the root; the expected path length sum_c f_c L_c is the smallest any binary tree can
    have (Huffman 1952), between H(f) and H(f) + 1 bits."""
    f = [float(v) for v in torch.as_tensor(freqs).reshape(-1).tolist()]
    if any(v < 0 for v in f):
        raise ValueError("class frequencies must be >= 0")
    heap = [(v, c, -(c + 1)) for c, v in enumerate(f)]  # (weight, tie-break, node)
    heapq.heapify(heap)
    pairs: list[tuple[int, int]] = []
    tick = len(f)
    while len(heap) > 1:
        wa, _, a = heapq.heappop(heap)
        wb, _, b = heapq.heappop(heap)
        pairs.append((a, b))
        heapq.heappush(heap, (wa + wb, tick, len(pairs) - 1))
        tick += 1
    return _from_merges(len(f), pairs)


def similarity_tree(vectors: Tensor) -> Tree:
    """A balanced tree in which similar classes share subtrees: split the classes at the median
    of their projection on the top principal direction of their vectors (e.g. class means of
    the features), and recurse. Node classifiers then separate groups that lie apart."""
    v = torch.as_tensor(vectors, dtype=torch.float64)
    pairs: list[tuple[int, int]] = []

    def build(idx: Tensor) -> int:
        if idx.numel() == 1:
            return -(int(idx) + 1)
        x = v[idx] - v[idx].mean(0)
        direction = torch.linalg.svd(x, full_matrices=False).Vh[0] if x.abs().sum() > 0 else torch.ones(v.shape[1], dtype=v.dtype)
        order = idx[torch.argsort(x @ direction, stable=True)]
        mid = (order.numel() + 1) // 2
        a, b = build(order[:mid]), build(order[mid:])
        pairs.append((a, b))
        return len(pairs) - 1

    build(torch.arange(v.shape[0]))
    return _from_merges(v.shape[0], pairs)


# ----------------------------------------------------------------------------------------------
# The output layer
# ----------------------------------------------------------------------------------------------


class HierarchicalSoftmax(nn.Module):
    """An output layer over ``tree.num_classes`` classes for features of size ``in_features``:
    one logistic classifier per internal node (``weight`` (C-1) x d, ``bias`` C-1), both zero at
    initialization, so every node starts at 1/2 and class c at probability 2^-L_c (a Huffman
    tree thus starts near the class frequencies).

    ``loss(h, y)`` and ``log_prob(h, y)`` touch only the nodes on each target's path, with no
    padding: the (sample, node) pairs of a batch are gathered into one flat list, so the cost
    is the batch's total path length times d. ``log_probs(h)`` (all classes) is the O(C d) flat
    reference, ``predict`` descends greedily (see the module docstring)."""

    def __init__(self, in_features: int, tree: Tree):
        super().__init__()
        self.in_features, self.tree, self.num_classes = in_features, tree, tree.num_classes
        n = tree.num_classes - 1
        self.weight = nn.Parameter(torch.zeros(n, in_features))
        self.bias = nn.Parameter(torch.zeros(n))
        t = tree.tensors()
        self.register_buffer("path_nodes", t["nodes"], persistent=False)
        self.register_buffer("path_signs", t["signs"], persistent=False)
        self.register_buffer("path_lengths", t["lengths"], persistent=False)
        self.register_buffer("path_mask", t["signs"] != 0, persistent=False)
        self.register_buffer("pos", t["pos"], persistent=False)
        self.register_buffer("neg", t["neg"], persistent=False)
        self.register_buffer("left", t["left"], persistent=False)
        self.register_buffer("right", t["right"], persistent=False)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, classes={self.num_classes}, max_depth={self.tree.max_depth}"

    def log_prob(self, h: Tensor, target: Tensor) -> Tensor:
        """log p(target_i | h_i) for each sample (N), from the target's path only."""
        n = h.shape[0]
        mask = self.path_mask[target]  # N x D: which path slots are real
        nodes = self.path_nodes[target][mask]  # P: the nodes of all paths, sample after sample
        signs = self.path_signs[target][mask].to(h.dtype)  # P
        sample = torch.arange(n, device=h.device).unsqueeze(1).expand_as(mask)[mask]  # P
        z = (h[sample] * self.weight[nodes]).sum(-1) + self.bias[nodes]  # P node logits
        return torch.zeros(n, dtype=h.dtype, device=h.device).index_add(0, sample, F.logsigmoid(signs * z))

    def loss(self, h: Tensor, target: Tensor) -> Tensor:
        """Mean negative log-likelihood -log p(y | h) over the batch."""
        return -self.log_prob(h, target).mean()

    forward = loss

    def node_logits(self, h: Tensor) -> Tensor:
        """z_n for every internal node (N x (C-1)): O(C d)."""
        return h @ self.weight.t() + self.bias

    def log_probs(self, h: Tensor) -> Tensor:
        """log p(c | h) for every class (N x C), the flat way: every node's logit, then the sum of
        log sigma(+z) over the nodes where c goes left and log sigma(-z) where it goes right."""
        z = self.node_logits(h)
        pos, neg = self.pos.to(h.dtype), self.neg.to(h.dtype)
        return (torch.sparse.mm(pos, F.logsigmoid(z).t()) + torch.sparse.mm(neg, F.logsigmoid(-z).t())).t()

    @torch.no_grad()
    def predict(self, h: Tensor, exact: bool = False) -> Tensor:
        """The predicted class per sample: greedy descent (O(depth d), the default) or, with
        ``exact``, the argmax of all class probabilities (O(C d))."""
        if exact or self.num_classes == 1:
            return self.log_probs(h).argmax(dim=1)
        node = torch.full((h.shape[0],), self.tree.root, dtype=torch.long, device=h.device)
        for _ in range(self.tree.max_depth):
            inner = node >= 0
            if not inner.any():
                break
            n = node.clamp(min=0)
            z = (h * self.weight[n]).sum(-1) + self.bias[n]
            node = torch.where(inner, torch.where(z >= 0, self.left[n], self.right[n]), node)
        return -node - 1


class FlatSoftmax(nn.Module):
    """The baseline with the same interface: one linear layer to C logits, softmax cross-entropy.
    Every step scores all C classes (O(C d) per sample)."""

    def __init__(self, in_features: int, num_classes: int):
        super().__init__()
        self.linear = nn.Linear(in_features, num_classes)
        self.num_classes = num_classes

    def log_probs(self, h: Tensor) -> Tensor:
        return F.log_softmax(self.linear(h), dim=1)

    def loss(self, h: Tensor, target: Tensor) -> Tensor:
        return F.cross_entropy(self.linear(h), target)

    forward = loss

    @torch.no_grad()
    def predict(self, h: Tensor, exact: bool = True) -> Tensor:
        return self.linear(h).argmax(dim=1)


def zipf_frequencies(num_classes: int, exponent: float = 1.0) -> Tensor:
    """f_c proportional to 1 / (c + 1)^exponent (word frequencies follow this roughly)."""
    f = 1.0 / torch.arange(1, num_classes + 1, dtype=torch.float64) ** exponent
    return f / f.sum()
