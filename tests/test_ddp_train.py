"""DDP training with two gloo ranks on the CPU: real engine steps of ACN (F and D in DDP),
identical weights on both ranks, identities sharded once per epoch, files written once by rank 0;
and the sweep fan-out of distributed.fan_out."""
import json
import sys
from collections import Counter
from dataclasses import replace

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from readnet import distributed, runs, train
from readnet.engine import build_engine, iterate_batches, train_step
from readnet.data.synthetic import make_dataset
from readnet.distributed import fan_out
from readnet.presets import preset, resolve

WORLD_SIZE = 2


def _flat(module):
    return torch.cat([p.detach().flatten() for p in module.parameters()])


def _same_on_all_ranks(tensor):
    copies = [torch.empty_like(tensor) for _ in range(WORLD_SIZE)]
    dist.all_gather(copies, tensor)
    return all(torch.equal(copy, copies[0]) for copy in copies)


def _rank_worker(rank: int, data_root: str, tmp_dir: str) -> None:
    torch.set_num_threads(1)
    distributed.init_distributed("gloo", f"file://{tmp_dir}/rendezvous", rank, WORLD_SIZE)
    try:
        config = resolve(preset("acn", data_root=data_root, p=3, k=2, height=32, width=16, pretrained=False,
                                num_workers=0, progress=False, eval_batch_size=64))
        dataset = train.load_dataset(config)
        engine = build_engine(config, dataset)
        model_before, d_before = _flat(engine.model), _flat(engine.discriminator)
        epoch_pids, iteration = [], 0
        for epoch in range(2):  # 12 ids, P=3, 2 ranks: 2 steps per rank per epoch, D then F
            pids = []
            for batch in iterate_batches(engine, dataset, epoch):
                train_step(engine, batch, iteration)
                pids += batch.pids.tolist()
                iteration += 1
            epoch_pids.append(pids)
        model_after, d_after = _flat(engine.model), _flat(engine.discriminator)

        saves, gathered = [], []
        save, gather = runs.save_checkpoint, distributed.gather_metrics
        runs.save_checkpoint = lambda *args: saves.append(1) or save(*args)
        distributed.gather_metrics = lambda metrics: gathered.append(gather(metrics)) or gathered[-1]
        run_dir = train.train(replace(config, max_iterations=4), f"{tmp_dir}/run")
        result = {
            "epoch_pids": epoch_pids,
            "type": type(engine.train_model).__name__, "d_type": type(engine.train_discriminator).__name__,
            "model_same": _same_on_all_ranks(model_after), "d_same": _same_on_all_ranks(d_after),
            "model_moved": not torch.equal(model_before, model_after), "d_moved": not torch.equal(d_before, d_after),
            "saves": len(saves), "gathered": gathered, "run_dir": str(run_dir),
        }
        with open(f"{tmp_dir}/rank{rank}.json", "w") as handle:
            json.dump(result, handle)
    finally:
        distributed.cleanup()


@pytest.fixture(scope="module")
def ranks(tmp_path_factory, module_dir):
    root = tmp_path_factory.mktemp("data")
    make_dataset("market1501", root, size="tiny", height=64, width=32)
    tmp_dir = module_dir
    mp.spawn(_rank_worker, args=(str(root), str(tmp_dir)), nprocs=WORLD_SIZE, join=True)
    return tmp_dir, [json.loads((tmp_dir / f"rank{r}.json").read_text()) for r in range(WORLD_SIZE)]


def test_both_ranks_hold_identical_extractor_and_discriminator_weights(ranks):
    _, results = ranks
    for result in results:
        assert result["type"] == result["d_type"] == "DistributedDataParallel"
        assert result["model_moved"] and result["d_moved"]
        assert result["model_same"] and result["d_same"]


def test_identities_are_sharded_and_each_is_drawn_once_per_epoch(ranks):
    _, results = ranks
    for epoch in range(2):
        per_rank = [set(r["epoch_pids"][epoch]) for r in results]
        assert per_rank[0].isdisjoint(per_rank[1]) and per_rank[0] | per_rank[1] == set(range(12))
        for result in results:
            assert all(count == 2 for count in Counter(result["epoch_pids"][epoch]).values())  # K images each


def test_one_run_folder_and_checkpoint_written_by_rank_0_with_gathered_metrics(ranks):
    tmp_dir, results = ranks
    assert results[0]["saves"] >= 1 and results[1]["saves"] == 0
    assert results[0]["run_dir"] == results[1]["run_dir"]
    run_dir = tmp_dir / "run"
    assert runs.load_checkpoint(run_dir / runs.LAST_CHECKPOINT)["iteration"] == 4
    assert runs.read_json(run_dir / runs.ENVIRONMENT_FILE)["world_size"] == 2
    records = runs.read_metrics(run_dir)
    assert [r["epoch"] for r in records] == [1, 2]
    per_rank = results[0]["gathered"]
    assert all(len(gathered) == WORLD_SIZE for gathered in per_rank) and results[1]["gathered"] == [None, None]
    for record, gathered in zip(records, per_rank):
        for key, value in distributed.mean_metrics(gathered).items():
            assert record[key] == pytest.approx(value)
    assert {"mAP", "rank1"} <= set(runs.read_json(run_dir / runs.FINAL_METRICS_FILE))


def test_fan_out_runs_one_job_per_device_at_a_time(tmp_path):
    script = ("import os, sys, time; start = time.time(); time.sleep(0.3); "
              "open(sys.argv[1], 'w').write(f\"{os.environ['CUDA_VISIBLE_DEVICES']} {start} {time.time()}\"); "
              "sys.exit(int(sys.argv[2]))")
    jobs = [[sys.executable, "-c", script, str(tmp_path / f"out{i}"), str(3 if i == 2 else 0)] for i in range(5)]
    codes = fan_out(jobs, devices=["0", "1"], log_dir=tmp_path / "logs")
    assert codes == [0, 0, 3, 0, 0]
    spans = {}
    for i in range(5):
        device, start, end = (tmp_path / f"out{i}").read_text().split()
        spans.setdefault(device, []).append((float(start), float(end)))
    assert set(spans) == {"0", "1"}
    for intervals in spans.values():
        intervals.sort()
        assert all(end <= next_start for (_, end), (next_start, _) in zip(intervals, intervals[1:]))
    assert sorted(p.name for p in (tmp_path / "logs").iterdir()) == [f"job_{i}.log" for i in range(5)]
    with pytest.raises(ValueError, match="argument list"):
        fan_out(["readnet train"], devices=["0"])
