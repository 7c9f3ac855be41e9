"""Whole-step CUDA graphs, checked on the CPU with a graph that replays eagerly: the input buffers,
the tensor lrs the schedule writes in place, the warm-up per kind of step, and checkpoints that
resume anywhere. The capture itself runs on a GPU only (benchmarks/device_check.sh --step-graphs)."""
import pytest
import torch

from readnet import train
from readnet.config import validate
from readnet.engine import build_engine, iterate_batches, train_step
from readnet.presets import preset, resolve
from readnet.step_graph import EagerReplay, StepGraphs, check_capturable, plain_learning_rates


def tiny(name, root, **overrides):
    values = dict(data_root=str(root), p=4, k=2, height=32, width=16, pretrained=False, num_workers=0, progress=False,
                  backbone="resnet18", fast_path=True, channels_last=False, schedule_unit="iteration", milestones=(5,),
                  warmup_steps=0)
    return resolve(preset(name, **{**values, **overrides}))


def run(config, steps, graphs):
    """Loss terms per step and the final extractor weights, stepping as the training loop does."""
    dataset = train.load_dataset(config)
    engine = build_engine(config, dataset)
    step = StepGraphs(engine, warmup_steps=2, graph_type=EagerReplay) if graphs else train_step
    losses = []
    batches = (batch for epoch in range(steps) for batch in iterate_batches(engine, dataset, epoch))
    for iteration, batch in zip(range(steps), batches):
        losses.append({name: float(value) for name, value in step(engine, batch, iteration).items()})
        for scheduler in engine.schedulers.values():
            scheduler.step()
    return engine, step, losses


@pytest.mark.parametrize("name, overrides, kinds", [
    ("basel", {}, {"extractor"}),
    ("atl_acn", {}, {"extractor", "discriminator"}),
    ("atl_acn", {"adversary_batches": "shared"}, {"shared"}),
    ("acn", {"adversary_objective": "gradient_reversal"}, {"extractor"}),  # D steps inside F's step
    ("acn", {"adversary_objective": "confusion"}, {"extractor", "discriminator"}),
])
def test_replayed_steps_train_as_the_eager_steps_do(name, overrides, kinds, market_root):
    """Eight steps (two warm-ups and a capture per kind, then replays), with the lr decayed at step 5:
    the same losses and weights as the eager steps, bit for bit (as on the GPU, RESULTS.md)."""
    config = tiny(name, market_root, **overrides)
    eager, _, eager_losses = run(config, 8, graphs=False)
    captured, graphs, graph_losses = run(config, 8, graphs=True)
    assert len(graph_losses) == 8 and set(graphs.graphs) == kinds
    for a, b in zip(eager_losses, graph_losses):
        assert a == b
    for (_, a), (_, b) in zip(eager.model.state_dict().items(), captured.model.state_dict().items()):
        assert torch.equal(a, b)


def test_the_lr_schedule_writes_the_tensor_the_graph_reads(market_root):
    engine, graphs, _ = run(tiny("atl", market_root), 7, graphs=True)
    for group, tensor in graphs.learning_rates:
        assert group["lr"] is tensor  # the same tensor across scheduler steps, not a float put in its place
    group = engine.optimizers["extractor"].param_groups[0]
    assert float(group["lr"]) == pytest.approx(engine.config.lr * engine.config.gamma)  # decayed at step 5
    group["lr"] = 1e-5  # something that replaces it with a float is put right before the next step
    graphs._sync_learning_rates()
    assert group["lr"] is graphs.learning_rates[0][1] and float(group["lr"]) == pytest.approx(1e-5)


def test_a_captured_runs_checkpoint_holds_float_lrs_and_loads_into_an_eager_engine(market_root):
    engine, _, _ = run(tiny("atl", market_root), 4, graphs=True)
    optimizer = plain_learning_rates(engine.optimizers["extractor"].state_dict())
    schedule = plain_learning_rates(engine.schedulers["extractor"].state_dict())
    assert all(isinstance(group["lr"], float) and not group.get("capturable") for group in optimizer["param_groups"])
    assert all(isinstance(lr, float) for lr in schedule["_last_lr"])
    fresh = build_engine(engine.config, train.load_dataset(engine.config))
    fresh.optimizers["extractor"].load_state_dict(optimizer)
    fresh.schedulers["extractor"].load_state_dict(schedule)
    assert fresh.optimizers["extractor"].param_groups[0]["lr"] == pytest.approx(float(
        engine.optimizers["extractor"].param_groups[0]["lr"]))


def test_capture_is_refused_where_it_cannot_run_naming_the_setting(market_root):
    config = tiny("atl", market_root, device="cpu")
    engine = build_engine(config, train.load_dataset(config))
    with pytest.raises(ValueError, match="needs a CUDA device.*cuda_graph_step=false"):
        check_capturable(engine)
    with pytest.raises(ValueError, match="set cuda_graphs=false"):
        validate(tiny("atl", market_root, cuda_graph_step=True, cuda_graphs=True))


def test_a_captured_run_checkpoints_and_resumes_with_or_without_graphs(market_root, tmp_path, monkeypatch):
    """The training loop with cuda_graph_step (graphs replayed eagerly here): it stops at 4 steps, its
    checkpoint resumes once without graphs and once with them, and both give the same losses."""
    import functools
    import json
    import shutil

    monkeypatch.setattr(train, "StepGraphs", functools.partial(StepGraphs, warmup_steps=1, graph_type=EagerReplay))
    config = tiny("atl", market_root, cuda_graph_step=True, max_iterations=4, epochs=None, eval_every=0,
                  checkpoint_every=4, milestones=(2,))
    run_dir = train.train(config, tmp_path / "run")
    checkpoint = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=False)
    assert all(isinstance(group["lr"], float) for group in checkpoint["optimizers"]["extractor"]["param_groups"])
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    train.resume(run_dir, max_iterations=6)
    train.resume(copy, max_iterations=6, cuda_graph_step=False)
    finals = [json.loads((folder / "final_metrics.json").read_text()) for folder in (run_dir, copy)]
    assert finals[0]["iteration"] == finals[1]["iteration"] == 6
    assert finals[0]["mAP"] == pytest.approx(finals[1]["mAP"], abs=1e-6)
