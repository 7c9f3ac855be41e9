import json
from collections import Counter

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from readnet import distributed
from readnet.data import PKSampler
from readnet.distributed import gather_metrics, mean_metrics

WORLD_SIZE = 2
# 12 identities with 3 images each; P=3 so that 12 = P x world x 2 batches per rank.
PIDS = [pid for pid in range(12) for _ in range(3)]


def _rank_worker(rank: int, tmp_dir: str) -> None:
    torch.set_num_threads(1)
    info = distributed.init_distributed("gloo", f"file://{tmp_dir}/rendezvous", rank, WORLD_SIZE)
    try:
        sampler = PKSampler(PIDS, p=3, k=2, seed=5, rank=distributed.get_rank(),
                            world_size=distributed.get_world_size())
        epochs = []
        for epoch in range(2):
            sampler.set_epoch(epoch)
            epochs.append([[PIDS[i] for i in batch] for batch in sampler])

        torch.manual_seed(100 + rank)  # different initial weights: DDP must broadcast rank 0's
        model = distributed.wrap_ddp(torch.nn.Linear(4, 2), info.device)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        for _ in range(3):
            inputs = torch.randn(8, 4)  # each rank its own data, as with the sharded sampler
            optimizer.zero_grad()
            model(inputs).pow(2).mean().backward()
            optimizer.step()
        weights = torch.cat([p.detach().flatten() for p in model.parameters()])
        all_weights = [torch.empty_like(weights) for _ in range(WORLD_SIZE)]
        dist.all_gather(all_weights, weights)

        gathered = gather_metrics({"loss": float(rank), "rank": float(rank)})
        result = {
            "rank": distributed.get_rank(),
            "world_size": distributed.get_world_size(),
            "main": distributed.is_main_process(),
            "epochs": epochs,
            "weights_equal": all(torch.equal(w, all_weights[0]) for w in all_weights),
            "weights_moved": not torch.equal(weights, torch.zeros_like(weights)),
            "gathered": gathered,
        }
        distributed.barrier()
        with open(f"{tmp_dir}/rank{rank}.json", "w") as handle:
            json.dump(result, handle)
    finally:
        distributed.cleanup()


@pytest.fixture(scope="module")
def rank_results(tmp_path_factory):
    tmp_dir = tmp_path_factory.mktemp("ddp")
    mp.spawn(_rank_worker, args=(str(tmp_dir),), nprocs=WORLD_SIZE, join=True)
    return [json.loads((tmp_dir / f"rank{r}.json").read_text()) for r in range(WORLD_SIZE)]


def test_sharded_sampler_covers_each_identity_once_per_epoch(rank_results):
    for epoch in range(2):
        per_rank = [{pid for batch in r["epochs"][epoch] for pid in batch} for r in rank_results]
        assert per_rank[0].isdisjoint(per_rank[1])
        assert per_rank[0] | per_rank[1] == set(range(12))
        for r in rank_results:
            assert len(r["epochs"][epoch]) == 2
            assert all(sorted(Counter(batch).values()) == [2, 2, 2] for batch in r["epochs"][epoch])
    assert rank_results[0]["epochs"][0] != rank_results[0]["epochs"][1]


def test_ddp_ranks_hold_identical_weights(rank_results):
    assert all(r["weights_equal"] and r["weights_moved"] for r in rank_results)
    assert [r["rank"] for r in rank_results] == [0, 1]
    assert all(r["world_size"] == WORLD_SIZE for r in rank_results)
    assert [r["main"] for r in rank_results] == [True, False]


def test_metrics_are_gathered_on_rank_0(rank_results):
    assert rank_results[0]["gathered"] == [{"loss": 0.0, "rank": 0.0}, {"loss": 1.0, "rank": 1.0}]
    assert rank_results[1]["gathered"] is None
    assert mean_metrics(rank_results[0]["gathered"]) == {"loss": 0.5, "rank": 0.5}


def test_single_process_defaults():
    assert distributed.get_rank() == 0 and distributed.get_world_size() == 1
    assert distributed.is_main_process()
    assert gather_metrics({"loss": 1.0}) == [{"loss": 1.0}]
    module = torch.nn.Linear(2, 2)
    assert distributed.wrap_ddp(module) is module
