"""expAT's RGB-IR batches: random cross-modal triplets, as the authors' training sets draw them
(prismformore/expAT, rgbir_exp/codes/datasets.py, SYSU_triplet_dataset and RegDB_triplet_dataset).

Each anchor identity gives one triplet per modality: an anchor image, a random other image of the
same identity (the positive) and a random image of a random other identity (the negative), drawn
for RGB and for IR independently. The step pairs them across modalities, as the authors' main.py
does: (RGB anchor, IR positive, IR negative) and (IR anchor, RGB positive, RGB negative).
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from readnet.data.samplers import _draw_k, _indices_by_pid, _PKEpochs


def _other(indices: Sequence[int], anchor: int, rng: np.random.Generator) -> int:
    """A random image of `indices` other than `anchor`; the anchor itself when it is the only one."""
    others = [index for index in indices if index != anchor]
    return others[rng.integers(len(others))] if others else anchor


class CrossModalTripletSampler(_PKEpochs):
    """P random triplets per modality per batch (the authors' train_batch_size 8 is the preset's P).

    Yields `(rgb, ir)`, each the P anchors, then the P positives, then the P negatives of its
    modality, as indices into the RGB and IR record lists; the RGB and IR anchors of position j share
    one identity. The anchor identities of a batch are distinct: P drawn as PKSampler draws them with
    K = 1. With `epoch_pass="images"` (the authors' epoch: their data set is indexed by the RGB
    images) every RGB image is one RGB anchor per epoch; the authors draw each anchor at random from
    its identity, which gives every image the same chance per draw. With "identities" every identity
    anchors once per epoch and its RGB anchor is drawn at random. Negative identities are drawn
    uniformly from the other identities seen in both modalities.
    """

    def __init__(self, rgb_pids: Sequence[int], ir_pids: Sequence[int], p: int, seed: int = 0, rank: int = 0,
                 world_size: int = 1, epoch_pass: str = "images") -> None:
        self.rgb_groups = _indices_by_pid(rgb_pids)
        self.ir_groups = _indices_by_pid(ir_pids)
        self._setup(sorted(set(self.rgb_groups) & set(self.ir_groups)), p, 1, seed, rank, world_size,
                    "identities with both RGB and IR images", epoch_pass, self.rgb_groups)

    def _negative(self, pid: int, rng: np.random.Generator) -> int:
        """A uniformly drawn identity other than `pid` (skipping pid's place in the sorted ids)."""
        j = int(rng.integers(len(self.ids) - 1))
        return self.ids[j + 1] if self.ids[j] >= pid else self.ids[j]

    def _triplets(self, groups: dict[int, list[int]], anchors: list[tuple[int, int]],
                  rng: np.random.Generator) -> list[int]:
        positives = [_other(groups[pid], anchor, rng) for pid, anchor in anchors]
        negatives = [_draw_k(groups[self._negative(pid, rng)], 1, rng)[0] for pid, _ in anchors]
        return [anchor for _, anchor in anchors] + positives + negatives

    def __iter__(self) -> Iterator[tuple[list[int], list[int]]]:
        if self.epoch_pass == "images":
            batches, rng = self._image_batches()
            id_groups = [[(pid, chunk[0]) for pid, chunk in slots] for slots in batches]
        else:
            groups, rng = self._epoch()
            id_groups = [[(pid, _draw_k(self.rgb_groups[pid], 1, rng)[0]) for pid in group] for group in groups]
        for rgb_anchors in id_groups:
            ir_anchors = [(pid, _draw_k(self.ir_groups[pid], 1, rng)[0]) for pid, _ in rgb_anchors]
            yield self._triplets(self.rgb_groups, rgb_anchors, rng), self._triplets(self.ir_groups, ir_anchors, rng)
