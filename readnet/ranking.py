"""The ranking core of readnet.evaluation: where each query's matches fall in its ranked gallery.

Every protocol (Market-1501 rule, SYSU-MM01, RegDB; ReadNet §4.1, expAT §4) needs, per query,
the rank of each match among the gallery items the query keeps, with the gallery ordered by
ascending distance and equal distances in gallery order (a stable sort). From those ranks come
the first hit (CMC), AP, and INP (Ye et al. 2021: matches / rank of the last match). Two exact
algorithms give the same ranks; each chunk of queries takes the cheaper one:

- counting (no sort): only negatives within a query's farthest match can precede a match, so
  only those are located among the query's sorted matches. Its cost follows their number: a
  few percent of the gallery for a trained model, most of it for an untrained one.
- sorting: each row is sorted once and every match is found by binary search, whatever the
  distances. On the CPU the rows are numpy float sorts spread over a thread pool (numpy
  releases the GIL while sorting); elsewhere (CUDA) torch sorts (row, distance, index) keys.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

# A chunk is sorted when more than this share of its distances lies within its rows' farthest
# match (the counting path's work). Measured at Market size on a 2-core CPU, counting on one
# thread and sorting on two: counting takes 0.17 s at 2%, 0.34 s at 10%, 0.5 s at 20% and 0.9 s
# at 27%; sorting about 0.55 s whatever the share. 1.0 never sorts; -1.0 always does.
SORT_ABOVE = 0.2
# CPU rows are sorted by numpy (a vectorised float sort, about 3x faster than torch's int64 sort
# here); False makes the CPU use the torch path that CUDA uses (tests cover it this way).
NUMPY_SORT_ON_CPU = True

# Gallery x query elements per chunk: bounds the working memory (about 40 bytes per element)
# and keeps a chunk in cache on a CPU.
_CPU_CHUNK_ELEMENTS = 1 << 20
_GPU_CHUNK_ELEMENTS = 1 << 26
_NO_KEY = torch.iinfo(torch.int64).max  # above every key (see _order_keys)
_TIE_BATCH = 256  # tied matches compared with their row at once (bounds a boolean buffer)


@dataclass(frozen=True)
class DropRule:
    """Which gallery items a query does not see: `drop(q_index, g_index)` is elementwise and
    broadcasts. `only_same_id` says it never drops another id (the Market rule)."""

    drop: Callable[[Tensor, Tensor], Tensor]
    only_same_id: bool


@dataclass(frozen=True)
class QueryStatistics:
    """Per query: the 0-based rank of its first match among the items it keeps, its AP, its INP
    (Ye et al. 2021: |matches| / 1-based rank of its last match, the hardest one), and whether it
    is valid (a match is left). Invalid queries hold rank 0, AP 0 and INP 0."""

    first_rank: Tensor
    average_precision: Tensor
    inverse_negative_penalty: Tensor
    valid: Tensor


@dataclass
class _Chunk:
    """Queries start..stop-1: their matches (local row, gallery index; rows ascending) and,
    for the sorting path, the items they drop (None: nothing dropped)."""

    start: int
    stop: int
    rows: Tensor
    cols: Tensor
    dropped: tuple[Tensor, Tensor] | None = None


def _same_id_pairs(q_pids: Tensor, g_pids: Tensor) -> tuple[Tensor, Tensor]:
    """Every (query, gallery) index pair with one pid, ordered by query then gallery index."""
    sorted_pids, order = torch.sort(g_pids, stable=True)
    begin = torch.searchsorted(sorted_pids, q_pids)
    counts = torch.searchsorted(sorted_pids, q_pids, right=True) - begin
    q_index = torch.repeat_interleave(torch.arange(q_pids.numel(), device=q_pids.device), counts)
    return q_index, order[begin[q_index] + _slot_in_row(q_index, counts)]


def _slot_in_row(rows: Tensor, counts: Tensor) -> Tensor:
    """0, 1, 2, ... within each run of equal `rows` (sorted ascending; counts = run lengths by row)."""
    return torch.arange(rows.numel(), device=rows.device) - (counts.cumsum(0) - counts)[rows]


def mask_pairs(mask: Tensor) -> tuple[Tensor, Tensor]:
    """(rows, cols) of a 2-D mask's True entries in row-major order, like mask.nonzero(as_tuple=True);
    on the CPU numpy's scan, several times faster than torch's there."""
    if mask.device.type != "cpu":
        return mask.nonzero(as_tuple=True)
    flat = torch.from_numpy(np.flatnonzero(mask.contiguous().numpy()))
    return flat // mask.shape[1], flat % mask.shape[1]


def _pairs_between(q_index: Tensor, g_index: Tensor, start: int, stop: int) -> tuple[Tensor, Tensor]:
    """The pairs of queries start..stop-1 (q_index ascending), rows made local to the chunk."""
    bounds = torch.tensor([start, stop], device=q_index.device)
    lo, hi = torch.searchsorted(q_index, bounds).tolist()
    return q_index[lo:hi] - start, g_index[lo:hi]


def _monotone(first: Tensor, second: Tensor) -> tuple[Tensor, Tensor]:
    """int64 codes in [0, 2**32) with the order and the ties of the distances in both tensors.

    float32 and narrower: the float bits made monotone (negative floats reversed; -0.0 coded as
    +0.0, as they compare equal). float64 does not fit 32 bits, so it is coded by its rank among
    the values at hand (a sort of those values only).
    """
    if first.dtype == torch.float64:
        ranks = torch.unique(torch.cat([first.reshape(-1), second.reshape(-1)]), return_inverse=True)[1]
        return ranks[:first.numel()].view(first.shape), ranks[first.numel():].view(second.shape)

    def code(values: Tensor) -> Tensor:
        bits = (values.float() + 0.0).view(torch.int32)
        return (bits ^ ((bits >> 31) & 0x7FFFFFFF)).long() + (1 << 31)

    return code(first), code(second)


def _order_keys(rows: Tensor, codes: Tensor, cols: Tensor, num_gallery: int) -> Tensor:
    """int64 keys ordered like (row, distance, gallery index): one comparison is the stable order."""
    col_bits = max(1, (num_gallery - 1).bit_length())
    return (rows << (32 + col_bits)) | (codes << col_bits) | cols


def _reach(distances: Tensor, match_rows: Tensor, match_cols: Tensor) -> tuple[Tensor, int]:
    """Per row, the gallery items within its farthest match (the only negatives that can precede
    one), and how many there are."""
    largest = torch.full((distances.shape[0],), -torch.inf, dtype=distances.dtype, device=distances.device)
    largest.scatter_reduce_(0, match_rows, distances[match_rows, match_cols], reduce="amax")
    if distances.device.type == "cpu" and distances.dtype in (torch.float32, torch.float64):
        # numpy works on one thread: torch would wake its own thread team, which contends for the
        # cores with the pool's sorts of earlier chunks.
        within = distances.numpy() <= largest.numpy()[:, None]
        return torch.from_numpy(within), int(np.count_nonzero(within))
    within = distances <= largest[:, None]
    return within, int(torch.count_nonzero(within))


def _counted_ranks(
    distances: Tensor, match_rows: Tensor, match_cols: Tensor, candidate: Tensor, reach: int,
    is_negative: Callable[[Tensor, Tensor], Tensor],
) -> tuple[Tensor, Tensor]:
    """Ranks (0-based, among kept items) of a chunk's matches, without sorting the gallery.

    Match k of a row (in ranking order) is preceded by k matches and by the negatives with a
    smaller (distance, gallery index) key. Only `candidate` negatives (within the row's largest
    match distance) can precede a match; those are located among the sorted match keys
    (searchsorted) and counted with a cumulative histogram. Returns (ranks, slot) per match,
    grouped by row in ranking order; slot = k. `reach` counts the candidates.
    """
    num_rows, num_gallery = distances.shape
    device = distances.device
    match_distances = distances[match_rows, match_cols]
    dense = 3 * reach >= candidate.numel()
    if dense:  # most of the gallery is within reach (a weak model): compacting would cost more
        rows, cols = torch.arange(num_rows, device=device)[:, None], torch.arange(num_gallery, device=device)
        values = distances
    else:
        rows, cols = mask_pairs(candidate)
        values = distances[rows, cols]
    match_codes, codes = _monotone(match_distances, values)
    match_keys = _order_keys(match_rows, match_codes, match_cols, num_gallery).sort().values
    counts = torch.bincount(match_rows, minlength=num_rows)
    row_end = counts.cumsum(0)
    keys = _order_keys(rows, codes, cols, num_gallery)
    if dense:
        # A short sorted list per row: the batched search takes log2(matches of the row) steps.
        padded = torch.full((num_rows, max(1, int(counts.max()))), _NO_KEY, dtype=torch.int64, device=device)
        padded[match_rows, _slot_in_row(match_rows, counts)] = match_keys
        located = torch.searchsorted(padded, keys) + (row_end - counts)[:, None]
    else:
        located = torch.searchsorted(match_keys, keys)
    # Rows live in the keys' top bits, so `located` stays within the row, or one past its last
    # match; negatives past the last match, and non-negatives, go to a spare last bin.
    counted = is_negative(rows, cols) & (located < row_end[rows])
    located = torch.where(counted, located, match_keys.numel())
    before = torch.bincount(located.view(-1), minlength=match_keys.numel() + 1)[:-1].cumsum(0)
    before = torch.cat([before.new_zeros(1), before])
    index = torch.arange(match_keys.numel(), device=device)
    row_start = (row_end - counts)[match_rows]
    slot = index - row_start
    return slot + before[index + 1] - before[row_start], slot


def _sorted_ranks_numpy(distances: Tensor, chunk: _Chunk) -> tuple[Tensor, Tensor]:
    """The sorting path on the CPU: (ranks, slot) per match of the chunk, in the chunk's match order.

    Dropped items become NaN, which numpy sorts and searches after every number, so a match's
    searchsorted position counts the kept items with a smaller distance; kept items with an equal
    distance and a smaller gallery index are added for the few matches whose distance repeats.
    """
    dtype = np.float64 if distances.dtype == torch.float64 else np.float32
    values = distances.to(torch.float64 if dtype == np.float64 else torch.float32).numpy().astype(dtype)  # a copy
    rows, cols = chunk.rows.numpy(), chunk.cols.numpy()
    if chunk.dropped is not None:
        values[chunk.dropped[0].numpy(), chunk.dropped[1].numpy()] = np.nan
    ordered = np.sort(values, axis=1)
    match_values = values[rows, cols]
    bounds = np.searchsorted(rows, np.arange(values.shape[0] + 1))
    below = np.empty(rows.size, dtype=np.int64)
    for row in np.flatnonzero(np.diff(bounds)):
        below[bounds[row]:bounds[row + 1]] = np.searchsorted(ordered[row], match_values[bounds[row]:bounds[row + 1]])
    ranks = below + _equal_before(values, ordered, rows, cols, match_values, below)
    return torch.from_numpy(ranks), torch.from_numpy(_slots(rows, ranks))


def _equal_before(values: np.ndarray, ordered: np.ndarray, rows: np.ndarray, cols: np.ndarray,
                  match_values: np.ndarray, below: np.ndarray) -> np.ndarray:
    """Per match: kept items of its row with its distance and a smaller gallery index (stable ties)."""
    num_gallery = values.shape[1]
    # ordered[row, below] is the match's own distance (its first occurrence); a repeat follows it.
    after = np.minimum(below + 1, num_gallery - 1)
    tied = np.flatnonzero((below + 1 < num_gallery) & (ordered[rows, after] == match_values))
    equal = np.zeros(rows.size, dtype=np.int64)
    columns = np.arange(num_gallery)
    for begin in range(0, tied.size, _TIE_BATCH):
        part = tied[begin:begin + _TIE_BATCH]
        same = (values[rows[part]] == match_values[part, None]) & (columns < cols[part, None])  # NaN never equal
        equal[part] = np.count_nonzero(same, axis=1)
    return equal


def _slots(rows: np.ndarray, ranks: np.ndarray) -> np.ndarray:
    """Per match (rows ascending): how many matches of its row rank before it."""
    order = np.lexsort((ranks, rows))
    slot = np.empty_like(ranks)
    slot[order] = np.arange(rows.size) - np.searchsorted(rows, rows[order])
    return slot


def _sorted_ranks_torch(distances: Tensor, chunk: _Chunk) -> tuple[Tensor, Tensor]:
    """The sorting path in torch (CUDA): (ranks, slot) per match of the chunk, in match order.

    Each item gets its (row, distance, gallery index) key, dropped items the largest key of their
    row; rows sorted one by one are then sorted as a whole, so one searchsorted per match
    counts the kept items before it.
    """
    num_rows, num_gallery = distances.shape
    device = distances.device
    rows, cols = chunk.rows, chunk.cols
    match_codes, codes = _monotone(distances[rows, cols], distances)
    keys = _order_keys(torch.arange(num_rows, device=device)[:, None], codes,
                       torch.arange(num_gallery, device=device), num_gallery)
    if chunk.dropped is not None:
        dropped_rows, dropped_cols = chunk.dropped
        col_bits = max(1, (num_gallery - 1).bit_length())
        keys[dropped_rows, dropped_cols] = ((dropped_rows + 1) << (32 + col_bits)) - 1
    flat = keys.sort(dim=1).values.view(-1)
    match_keys = _order_keys(rows, match_codes, cols, num_gallery)
    ranks = torch.searchsorted(flat, match_keys) - rows * num_gallery
    slot = torch.empty_like(ranks)
    slot[match_keys.argsort()] = _slot_in_row(rows, torch.bincount(rows, minlength=num_rows))
    return ranks, slot


def _chunk_rows(num_gallery: int, device: torch.device, chunk_size: int | None) -> int:
    # The keys hold the chunk row above 32 distance bits and the gallery index.
    most_rows = 1 << (31 - max(1, (num_gallery - 1).bit_length()))
    if chunk_size is not None and chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    if chunk_size is None:
        budget = _GPU_CHUNK_ELEMENTS if device.type == "cuda" else _CPU_CHUNK_ELEMENTS
        chunk_size = max(1, budget // num_gallery)
    return min(chunk_size, most_rows)


def _negative_test(
    q_pids: Tensor, g_pids: Tensor, rule: DropRule | None, offset: int
) -> Callable[[Tensor, Tensor], Tensor]:
    """is_negative(rows, cols) for a chunk of queries starting at query `offset` (rows are local)."""

    def is_negative(rows: Tensor, cols: Tensor) -> Tensor:
        negative = g_pids[cols] != q_pids[rows]
        if rule is not None and not rule.only_same_id:
            negative &= ~rule.drop(rows + offset, cols)
        return negative

    return is_negative


def _dropped_items(rule: DropRule | None, junk: tuple[Tensor, Tensor], start: int, stop: int,
                   num_gallery: int, device: torch.device) -> tuple[Tensor, Tensor] | None:
    """(local rows, gallery indices) of the items queries start..stop-1 drop, or None."""
    if rule is None:
        return None
    if rule.only_same_id:  # the dropped items are same-id pairs, already listed
        return _pairs_between(*junk, start, stop)
    queries = torch.arange(start, stop, device=device)[:, None]
    return mask_pairs(rule.drop(queries, torch.arange(num_gallery, device=device)[None, :]))


@contextlib.contextmanager
def _sorting(device: torch.device):
    """Yields submit(distances, chunk) -> Future of the sorting path's (ranks, slot).

    On the CPU with several torch threads, the chunks go to a pool of that many threads, so they
    sort while later chunks are classified, and torch's own ops run on one thread meanwhile
    (restored after): its thread team stalls at every op once a core is busy elsewhere, which
    made the counting path 10x slower on two threads than on one on a shared 2-core machine.
    Otherwise the chunks sort at once.
    """
    if device.type != "cpu":
        yield lambda distances, chunk: _done(_sorted_ranks_torch(distances, chunk))
        return
    sort = _sorted_ranks_numpy if NUMPY_SORT_ON_CPU else _sorted_ranks_torch
    workers = torch.get_num_threads()
    if workers <= 1:
        yield lambda distances, chunk: _done(sort(distances, chunk))
        return
    torch.set_num_threads(1)
    try:
        with ThreadPoolExecutor(workers) as pool:
            yield lambda distances, chunk: pool.submit(sort, distances, chunk)
    finally:
        torch.set_num_threads(workers)


def _done(result) -> Future:
    future: Future = Future()
    future.set_result(result)
    return future


def query_statistics(
    distmat: Tensor, q_pids: Tensor, g_pids: Tensor, rule: DropRule | None, chunk_size: int | None
) -> QueryStatistics:
    """Per query: first-match rank, AP and INP (QueryStatistics), from the ranks of its matches.

    A query with no match left once `rule` drops its gallery items is invalid. Chunks of
    `chunk_size` queries take the counting or the sorting path (module docstring, SORT_ABOVE).
    """
    num_query, num_gallery = distmat.shape
    if num_gallery >= 1 << 30:
        raise ValueError(f"a gallery of {num_gallery} items is too large; split it below 2**30 items")
    device = distmat.device
    q_same, g_same = _same_id_pairs(q_pids, g_pids)
    junk = (q_same[:0], g_same[:0])
    if rule is not None:
        kept = ~rule.drop(q_same, g_same)
        junk = (q_same[~kept], g_same[~kept])
        q_same, g_same = q_same[kept], g_same[kept]
    first_rank = torch.zeros(num_query, dtype=torch.int64, device=device)
    average_precision = torch.zeros(num_query, dtype=torch.float64, device=device)
    inverse_penalty = torch.zeros(num_query, dtype=torch.float64, device=device)
    num_matches = torch.zeros(num_query, dtype=torch.int64, device=device)

    def record(chunk: _Chunk, ranks: Tensor, slot: Tensor) -> None:
        rows, size = chunk.rows, chunk.stop - chunk.start
        first = slot == 0
        first_rank[chunk.start + rows[first]] = ranks[first]
        precision = (slot + 1).double() / (ranks + 1).double()
        average_precision[chunk.start:chunk.stop] = torch.bincount(rows, weights=precision, minlength=size)
        counts = torch.bincount(rows, minlength=size)
        # The hardest match is the last ranked: a scatter max of the ranks per row (0 where none).
        last = torch.zeros(size, dtype=torch.int64, device=device).scatter_reduce_(0, rows, ranks, reduce="amax")
        inverse_penalty[chunk.start:chunk.stop] = counts.double() / (last + 1).double()
        num_matches[chunk.start:chunk.stop] = counts

    sorted_chunks = []
    step = _chunk_rows(num_gallery, device, chunk_size)
    with _sorting(device) as submit:
        for start in range(0, num_query, step):
            stop = min(start + step, num_query)
            chunk = _Chunk(start, stop, *_pairs_between(q_same, g_same, start, stop))
            distances = distmat[start:stop]
            candidate, reach = _reach(distances, chunk.rows, chunk.cols)
            if reach > SORT_ABOVE * candidate.numel():
                chunk.dropped = _dropped_items(rule, junk, start, stop, num_gallery, device)
                sorted_chunks.append((chunk, submit(distances, chunk)))
            else:
                is_negative = _negative_test(q_pids[start:stop], g_pids, rule, start)
                record(chunk, *_counted_ranks(distances, chunk.rows, chunk.cols, candidate, reach, is_negative))
        for chunk, future in sorted_chunks:
            ranks, slot = future.result()
            record(chunk, ranks.to(device), slot.to(device))
    return QueryStatistics(first_rank, average_precision / num_matches.clamp(min=1), inverse_penalty,
                           num_matches > 0)


def random_ranking_statistics(
    q_pids: Tensor, g_pids: Tensor, rule: DropRule | None, chunk_size: int | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """Per query, what a uniformly random order of its kept gallery items scores in expectation:
    the rank-1 hit m/n and the AP (1/n) [H_n + (m-1)/(n-1) (n - H_n)], for m kept matches among
    n kept items (H_n the n-th harmonic number; each position k is a match with probability m/n,
    and then holds 1 + (k-1)(m-1)/(n-1) matches on average). Also whether the query is valid
    (m > 0), as in :func:`query_statistics`, whose drop `rule` it shares."""
    num_query, num_gallery = q_pids.numel(), g_pids.numel()
    device = q_pids.device
    q_same, g_same = _same_id_pairs(q_pids, g_pids)
    dropped = torch.zeros(num_query, dtype=torch.int64, device=device)
    if rule is not None:
        kept = ~rule.drop(q_same, g_same)
        if rule.only_same_id:
            dropped = torch.bincount(q_same[~kept], minlength=num_query)
        else:
            step = _chunk_rows(num_gallery, device, chunk_size)
            columns = torch.arange(num_gallery, device=device)[None, :]
            for start in range(0, num_query, step):
                queries = torch.arange(start, min(start + step, num_query), device=device)[:, None]
                dropped[start:start + step] = rule.drop(queries, columns).sum(1)
        q_same = q_same[kept]
    matches = torch.bincount(q_same, minlength=num_query).double()
    items = (num_gallery - dropped).double()
    harmonic = torch.cat([torch.zeros(1, dtype=torch.float64, device=device),
                          (1.0 / torch.arange(1, num_gallery + 1, dtype=torch.float64, device=device)).cumsum(0)])
    h_n = harmonic[items.long()]
    share = (matches - 1) / (items - 1).clamp(min=1)  # n = 1 leaves m = 1: AP = H_1 / 1 = 1
    average_precision = (h_n + share * (items - h_n)) / items.clamp(min=1)
    valid = matches > 0
    return matches / items.clamp(min=1), torch.where(valid, average_precision, 0.0), valid
