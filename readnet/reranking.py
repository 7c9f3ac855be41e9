"""k-reciprocal re-ranking (Zhong et al., CVPR 2017; ReadNet's reference [35]).

:func:`re_rank` returns the paper's final distance d* = (1 - lambda) d_J + lambda d (eq. 12)
between queries and gallery, computed over all N = Q + G images, with the conventions of the
authors' code (as torchreid ships it, ``re_ranking``) wherever the paper leaves a choice, so the
numbers agree with it:

- d is the squared distance divided by the largest squared distance in its column of the
  N x N matrix [[q_q, q_g], [q_g^T, g_g]] (the column of the image the row ranks from);
- N(p, k) is the k + 1 nearest images, p itself included;
- R*(p, k) adds R(q, round(k / 2)) for q in R(p, k) when strictly more than 2/3 of it lies in
  R(p, k) (eq. 6), rounding halves to even;
- V_p (eq. 7) holds exp(-d(p, g)) on R*(p, k), normalised to sum 1, so eq. 10's sum of maxima
  is 2 minus the sum of minima;
- local query expansion (eq. 11) averages V over N(p, k2); k2 = 1 leaves V as it is.

V has at most (k1 + 1)(round(k1 / 2) + 2) entries a row, so it is kept sparse and nothing N x N
is built (torchreid builds four such matrices, and argsorts one of them whole): the k1 + 1
nearest come from top-k over blocks, g_g is read by rows (its columns are found from a bound
taken from its rows, see _gallery_nearest), and eq. 10's sums of minima run over the pairs of
entries that share a column.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from readnet.ranking import mask_pairs

_BLOCK_ELEMENTS = 1 << 24  # rows x N distances per top-k block (64 MiB of float32)
_PAIR_BLOCK = 1 << 24  # (query entry, gallery entry) pairs per block of eq. 10's sums


def re_rank(q_g_dist, q_q_dist, g_g_dist, k1: int = 20, k2: int = 6, lambda_value: float = 0.3):
    """Re-ranked query x gallery distances (eq. 12), float32, as numpy or as a torch tensor on
    q_g_dist's device, like q_g_dist. The paper's setting is k1=20, k2=6, lambda_value=0.3."""
    if k1 < 1 or k2 < 1:
        raise ValueError(f"k1 and k2 must be >= 1, got k1={k1}, k2={k2}")
    if not 0.0 <= lambda_value <= 1.0:
        raise ValueError(f"lambda_value must be in [0, 1], got {lambda_value}")
    as_numpy = not isinstance(q_g_dist, Tensor)
    q_g = _matrix(q_g_dist, "q_g_dist")
    q_q, g_g = _matrix(q_q_dist, "q_q_dist", q_g.device), _matrix(g_g_dist, "g_g_dist", q_g.device)
    num_query, num_gallery = q_g.shape
    if q_q.shape != (num_query, num_query) or g_g.shape != (num_gallery, num_gallery):
        raise ValueError(f"expected q_q_dist [{num_query}, {num_query}] and g_g_dist [{num_gallery}, {num_gallery}] "
                         f"for q_g_dist {tuple(q_g.shape)}, got {tuple(q_q.shape)} and {tuple(g_g.shape)}")
    with torch.no_grad():
        full = _FullDistance(q_q, q_g, g_g)
        # torchreid ranks the whole row; the first max(k1 + 1, k2) are all it reads.
        nearest = full.nearest(min(max(k1 + 1, k2), full.size))
        rows, cols = _expanded_neighbours(nearest[:, :k1 + 1], k1)
        weights = torch.exp(-full.normalised(rows, cols).double())
        sums = torch.zeros(full.size, dtype=torch.float64, device=q_g.device).index_add_(0, rows, weights)
        values = weights / sums[rows]
        if k2 != 1:
            rows, cols, values = _query_expansion(rows, cols, values, nearest[:, :k2].contiguous(), full.size)
        shared = _sums_of_minima(rows, cols, values.float(), num_query, full.size)
        jaccard = shared.div_(2 - shared).neg_().add_(1)  # eq. 10: rows of V sum to 1, so sum of maxima = 2 - shared
        original = (q_g * q_g).float().div_(full.scale[:num_query, None])
        final = jaccard.mul_(1 - lambda_value).add_(original.mul_(lambda_value))
    return final.cpu().numpy() if as_numpy else final


def _matrix(values, name: str, device: torch.device | None = None) -> Tensor:
    tensor = values.detach() if isinstance(values, Tensor) else torch.as_tensor(np.asarray(values))
    if tensor.dim() != 2 or 0 in tensor.shape:
        raise ValueError(f"{name} must be a non-empty 2-D matrix, got shape {tuple(tensor.shape)}")
    if not tensor.is_floating_point():
        tensor = tensor.double()
    return tensor if device is None else tensor.to(device)


class _FullDistance:
    """The N x N matrix [[q_q, q_g], [q_g^T, g_g]] without building it: its columns by blocks,
    single entries, and d of the paper (squared, over the column's largest square, float32)."""

    def __init__(self, q_q: Tensor, q_g: Tensor, g_g: Tensor):
        self.q_q, self.q_g, self.g_g = q_q, q_g, g_g
        self.num_query = q_g.shape[0]
        self.size = q_g.shape[0] + q_g.shape[1]
        lowest = [float(m.min()) for m in (q_q, q_g, g_g)]  # NaN propagates to the minimum
        if any(math.isnan(value) for value in lowest):
            raise ValueError("the distance matrices contain NaN")
        # Distances are >= 0: then a column ranks the same by its entries as by d (up to d's ties).
        self.nonnegative = min(lowest) >= 0

        def column_max(matrix: Tensor, dim: int) -> Tensor:
            return matrix.amax(dim) if self.nonnegative else matrix.abs().amax(dim)

        # Squaring and rounding are monotone in |x|: the largest square is the square of the largest |x|.
        largest = torch.cat([torch.maximum(column_max(q_q, 0), column_max(q_g, 1)),
                             torch.maximum(column_max(q_g, 0), column_max(g_g, 0))])
        self.scale = (largest * largest).float()

    def _key(self, block: Tensor) -> Tensor:
        """What a column is ranked by: its entries (d's order up to d's ties) or, with negative
        entries, their squares."""
        return block if self.nonnegative else block * block

    def entries(self, rows: Tensor, cols: Tensor) -> Tensor:
        """Entries [rows, cols] of the N x N matrix."""
        q = self.num_query
        out = torch.empty(rows.shape, dtype=self.q_g.dtype, device=rows.device)
        for row_query in (True, False):
            for col_query in (True, False):
                pick = ((rows < q) == row_query) & ((cols < q) == col_query)
                r, c = rows[pick], cols[pick]
                if row_query and col_query:
                    out[pick] = self.q_q[r, c]
                elif row_query:
                    out[pick] = self.q_g[r, c - q]
                elif col_query:
                    out[pick] = self.q_g[c, r - q]
                else:
                    out[pick] = self.g_g[r - q, c - q]
        return out

    def normalised(self, rows: Tensor, cols: Tensor) -> Tensor:
        """d(row, col) of the paper: row ranks from column `row` of the matrix."""
        value = self.entries(cols, rows)
        return (value * value).float() / self.scale[rows]

    def nearest(self, count: int) -> Tensor:
        """[N, count] indices of each image's nearest images by d, nearest first (N(p, count - 1))."""
        queries = torch.arange(self.num_query, device=self.q_g.device)
        return torch.cat([self._nearest_by_columns(queries, count), self._gallery_nearest(count)])

    def _nearest_by_columns(self, images: Tensor, count: int) -> Tensor:
        """[len(images), count] nearest of `images` (all queries or all gallery images) from their
        columns, gathered in blocks: transposed copies, which are slow for g_g."""
        queries = bool(images[0] < self.num_query)
        out = torch.empty(images.numel(), count, dtype=torch.int64, device=images.device)
        step = max(1, _BLOCK_ELEMENTS // self.size)
        buffer = torch.empty(step, self.size, dtype=self.q_g.dtype, device=images.device)
        for start in range(0, images.numel(), step):
            chosen = images[start:start + step]
            block = buffer[:chosen.numel()]
            if queries:
                block[:, :self.num_query], block[:, self.num_query:] = self.q_q[:, chosen].T, self.q_g[chosen]
            else:
                chosen = chosen - self.num_query
                block[:, :self.num_query], block[:, self.num_query:] = self.q_g[:, chosen].T, self.g_g[:, chosen].T
            out[start:start + step] = torch.topk(self._key(block), count, dim=1, largest=False, sorted=True).indices
        return out

    def _gallery_nearest(self, count: int) -> Tensor:
        """[G, count] nearest images of the gallery images, read from g_g by rows, not columns.

        A gallery image's column holds at least `count` entries up to a bound b (a distance
        matrix is symmetric up to rounding, so b is the count-th smallest entry of its row), so
        its nearest are the nearest among the entries <= b: one pass over the rows collects those.
        Columns left with fewer (a matrix far from symmetric) are gathered whole.
        """
        q, device = self.num_query, self.q_g.device
        num_gallery = self.size - q
        step = max(1, _BLOCK_ELEMENTS // num_gallery)
        bound = torch.full((num_gallery,), torch.inf, dtype=self.q_g.dtype, device=device)
        if count <= num_gallery:
            for start in range(0, num_gallery, step):
                block = self._key(self.g_g[start:start + step])
                bound[start:start + step] = torch.topk(block, count, dim=1, largest=False).values[:, -1]
        rows, cols, values = [], [], []
        for matrix, offset in ((self.q_g, 0), (self.g_g, q)):
            for start in range(0, matrix.shape[0], step):
                block = self._key(matrix[start:start + step])
                r, c = mask_pairs(block <= bound)
                rows.append(r + start + offset), cols.append(c), values.append(block[r, c])
        rows, cols, values = torch.cat(rows), torch.cat(cols), torch.cat(values)
        # Candidates by column, then by value; equal values keep the row order.
        order = torch.sort(values, stable=True).indices
        order = order[torch.sort(cols[order], stable=True).indices]
        counts = torch.bincount(cols, minlength=num_gallery)
        picks = (counts.cumsum(0) - counts)[:, None] + torch.arange(count, device=device)
        # A column with fewer candidates reads past its own (clamped at the end): replaced below.
        nearest = rows[order][picks.clamp(max=max(rows.numel() - 1, 0))]
        short = torch.nonzero(counts < count).view(-1)
        if short.numel():
            nearest[short] = self._nearest_by_columns(short + q, count)
        return nearest


def _reciprocal(neighbours: Tensor) -> Tensor:
    """[N, k] mask: neighbour m of row i has i among its own first k neighbours (eq. 4)."""
    own = torch.arange(neighbours.shape[0], device=neighbours.device)[:, None, None]
    return (neighbours[neighbours] == own).any(-1)


def _expanded_neighbours(nearest: Tensor, k1: int) -> tuple[Tensor, Tensor]:
    """(rows, cols) of R*(p, k1) for every image p (eq. 6), sorted by row then column."""
    size, device = nearest.shape[0], nearest.device
    near = nearest[:, :min(round(k1 / 2), size - 1) + 1]
    in_r = _reciprocal(nearest)  # R(p, k1) as a mask over N(p, k1)
    in_half = _reciprocal(near)  # R(q, k1/2) as a mask over N(q, k1/2)
    image = torch.arange(size, device=device)[:, None]
    members = (image * size + nearest)[in_r].sort().values  # R(p, k1) as sorted (p, member) keys
    # For each q in N(p, k1): the members of R(q, k1/2), and which of them lie in R(p, k1).
    candidates, valid = near[nearest], in_half[nearest]
    keys = image[..., None] * size + candidates
    inside = (members[torch.searchsorted(members, keys).clamp_(max=members.numel() - 1)] == keys) & valid
    accepted = in_r & (3 * torch.count_nonzero(inside, dim=-1) > 2 * in_half.sum(1)[nearest])
    items = torch.cat([nearest, candidates.flatten(1)], 1)
    keep = torch.cat([in_r, (valid & accepted[..., None]).flatten(1)], 1)
    keys = torch.unique((image * size + items)[keep])
    return keys // size, keys % size


def _query_expansion(rows: Tensor, cols: Tensor, values: Tensor, nearest: Tensor, size: int):
    """Sparse V averaged over each image's first k2 neighbours (eq. 11), sorted by row then column."""
    counts = torch.bincount(rows, minlength=size)
    starts = counts.cumsum(0) - counts
    lengths = counts[nearest].view(-1)
    source = torch.repeat_interleave(torch.arange(lengths.numel(), device=rows.device), lengths)
    offsets = lengths.cumsum(0) - lengths
    entry = starts[nearest.view(-1)][source] + torch.arange(source.numel(), device=rows.device) - offsets[source]
    keys, inverse = torch.unique(source // nearest.shape[1] * size + cols[entry], return_inverse=True)
    averaged = torch.zeros(keys.numel(), dtype=values.dtype, device=values.device)
    averaged.index_add_(0, inverse, values[entry])
    return keys // size, keys % size, averaged / nearest.shape[1]


def _sums_of_minima(rows: Tensor, cols: Tensor, values: Tensor, num_query: int, size: int) -> Tensor:
    """[Q, G] sums over columns of min(V[query], V[gallery image]) (eq. 10's numerator)."""
    device = values.device
    num_gallery = size - num_query
    # Gallery rows by column: for each column, the gallery images with an entry there.
    gallery = rows >= num_query
    g_rows, g_cols, g_values = rows[gallery] - num_query, cols[gallery], values[gallery]
    order = torch.sort(g_cols, stable=True).indices
    g_rows, g_values = g_rows[order], g_values[order]
    col_counts = torch.bincount(g_cols, minlength=size)
    col_starts = col_counts.cumsum(0) - col_counts
    # Query entries (rows sorted) and the gallery entries of their columns.
    q_rows, q_cols, q_values = rows[~gallery], cols[~gallery], values[~gallery]
    pairs = col_counts[q_cols]
    out = torch.zeros(num_query * num_gallery, dtype=values.dtype, device=device)
    bounds = _blocks(pairs.cumsum(0), _PAIR_BLOCK)
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        lengths = pairs[lo:hi]
        source = torch.repeat_interleave(torch.arange(lo, hi, device=device), lengths)
        offsets = lengths.cumsum(0) - lengths
        entry = col_starts[q_cols[source]] + torch.arange(source.numel(), device=device) - offsets[source - lo]
        shared = torch.minimum(q_values[source], g_values[entry])
        out.index_add_(0, q_rows[source] * num_gallery + g_rows[entry], shared)
    return out.view(num_query, num_gallery)


def _blocks(cumulative: Tensor, budget: int) -> list[int]:
    """Split points of entries whose cumulative work is `cumulative`, about `budget` work a block."""
    total = int(cumulative[-1]) if cumulative.numel() else 0
    marks = torch.arange(budget, max(total, budget), budget, device=cumulative.device)
    inner = torch.searchsorted(cumulative, marks, right=True).tolist()
    return sorted({0, *inner, cumulative.numel()})
