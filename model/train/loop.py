"""`aia train`: the training procedure of the AIA paper, read top to bottom.

setup -> data -> model -> optimiser -> memory source -> resume -> steps (memory read, forward,
focal loss, backward, SGD, memory write) with logging, checkpoints and validation -> curves.
"""

from __future__ import annotations

import functools
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from model.config import ModelConfig, from_dict, preset, to_dict
from model.data.ava_files import read_label_map
from model.data.batching import Batch, EpochSampler, collate, worker_init
from model.data.dataset import AvaDataset, eval_options, train_options
from model.data.layout import DatasetLayout, load_layout
from model.labels import Label, ava_labels, class_groups, read_label_table
from model.losses import action_loss
from model.network import AIA, build_aia
from model.train import checkpoint as ckpt
from model.train import distributed as dd
from model.train.config import MemoryMode, TrainConfig, dump
from model.train.memory import MemorySource, build_memory
from model.train.optim import build_optimizer, build_scheduler, freeze_norms
from model.train.plots import plot_curves
from model.train.validate import validate


def resolve_model_config(cfg: TrainConfig, labels: tuple[Label, ...]) -> ModelConfig:
    """Preset + overrides, with the classifier sized and grouped by the dataset's labels."""
    model_cfg = preset(cfg.model.preset)
    if cfg.model.overrides:
        model_cfg = model_cfg.replace(**cfg.model.overrides)
    groups = class_groups(labels)
    return model_cfg.replace(classifier={"num_classes": len(labels),
                                         "groups": [to_dict(g) for g in groups]})


def dataset_labels(layout: DatasetLayout) -> tuple[Label, ...]:
    """The dataset's label table. Without one: the shipped AVA table if the label map is
    AVA's, else every class of the label map in one multi-label group."""
    if layout.label_table is not None:
        return read_label_table(layout.label_table)
    names = read_label_map(layout.label_map)
    ava = ava_labels()
    if names == {label.id: label.name for label in ava}:
        return ava
    return tuple(Label(i, name, "action", True) for i, name in sorted(names.items()))


def load_initial_weights(model: AIA, path: str) -> None:
    """Our checkpoint or state dict (loaded where keys match), or PySlowFast's Kinetics
    `.pyth` / Caffe2 `.pkl` (every backbone tensor placed, or InitWeightsError)."""
    from model.init_weights import initial_weights

    weights, kind = initial_weights(Path(path), model.state_dict())
    missing, unexpected = model.load_state_dict(weights, strict=False)
    print(f"init from {path} ({kind}): {len(weights)} tensors, {len(missing)} of ours missing, "
          f"{len(unexpected)} unexpected")


def invocation() -> list[str]:
    """The command line of this process: `aia train ...` or `python -m model.train ...`."""
    program = Path(sys.argv[0])
    if program.name == "__main__.py":  # python -m model.train (or torchrun -m)
        return ["python", "-m", "model.train", *sys.argv[1:]]
    return [program.name, *sys.argv[1:]]


def make_checkpoint(step: int, cfg: TrainConfig, model_cfg: ModelConfig, model: AIA,
                    optimizer: torch.optim.Optimizer, scheduler: Any, memory: MemorySource,
                    labels: tuple[Label, ...], history: dict[str, Any]) -> dict[str, Any]:
    bank = getattr(memory, "bank", None)
    return {
        "format": ckpt.FORMAT, "step": step,
        "model_config": to_dict(model_cfg), "train_config": to_dict(cfg),
        "model": model.state_dict(), "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(), "rng": ckpt.rng_state(),
        "bank": None if bank is None else bank.state_dict(),
        "labels": [[lb.id, lb.name, lb.group, lb.evaluated] for lb in labels],
        "history": history,
        # how this run was started, so an exported artifact can say how it was made
        "command": invocation(),
    }


def log_line(path: Path, record: dict[str, Any]) -> None:
    with open(path, "a") as handle:
        handle.write(json.dumps(record) + "\n")


def train(cfg: TrainConfig, resume: str | None = None) -> Path:
    """Runs to cfg.schedule.max_steps; returns the out dir. `resume`: a checkpoint path or
    "auto" (the latest in out_dir)."""
    world = dd.setup(cfg.device)
    out = Path(cfg.out_dir)
    torch.manual_seed(cfg.seed + world.rank)
    if world.main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.yaml").write_text(dump(cfg))
        print(dump(cfg))

    # data
    layout = load_layout(cfg.data.root)
    labels = dataset_labels(layout)
    model_cfg = resolve_model_config(cfg, labels)
    train_set = AvaDataset(layout, cfg.data.train_split, model_cfg,
                           train_options(seed=cfg.seed, cache_dir=cfg.data.cache_dir))
    per_rank = max(1, cfg.data.batch_size // world.size)
    sampler = EpochSampler(len(train_set), True, cfg.seed, world.rank, world.size)
    loader = DataLoader(train_set, batch_size=per_rank, sampler=sampler, drop_last=True,
                        num_workers=cfg.data.workers, worker_init_fn=worker_init,
                        # its own generator: a new iterator (each epoch, and on resume) must
                        # not draw from the global RNG that dropout uses
                        generator=torch.Generator().manual_seed(cfg.seed),
                        collate_fn=functools.partial(collate,
                                                     num_classes=train_set.num_classes))
    steps_per_epoch = len(train_set) // world.size // per_rank
    if steps_per_epoch == 0:
        raise ValueError(f"{cfg.data.root}: {len(train_set)} training key frames is fewer "
                         f"than one batch of {per_rank} per rank")

    # model, optimiser, memory
    model = build_aia(model_cfg).to(world.device)
    if cfg.model.init:
        load_initial_weights(model, cfg.model.init)
    if cfg.optim.freeze_norm:
        freeze_norms(model)
    optimizer = build_optimizer(model, cfg.optim, cfg.data.batch_size)
    scheduler = build_scheduler(optimizer, cfg.schedule)
    if cfg.memory.mode is MemoryMode.JOINT and world.size > 1:
        raise ValueError("memory.mode=joint runs in one process (it is the costly baseline)")
    memory = build_memory(cfg.memory.mode, model_cfg, cfg.memory, train_set, model,
                          functools.partial(dd.gather_writes, world=world))
    net: torch.nn.Module = (DistributedDataParallel(model) if world.size > 1 else model)

    # resume
    checkpoints = ckpt.CheckpointDir(out, cfg.checkpoint.keep_last)
    step, history = 0, {"best_map": -1.0}
    path = checkpoints.latest() if resume == "auto" else resume
    if path is not None:
        state = ckpt.load(path)
        if from_dict(state["model_config"]) != model_cfg:
            raise ckpt.CheckpointError(f"{path}: saved for another model config")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        ckpt.set_rng_state(state["rng"])
        if state["bank"] is not None and hasattr(memory, "bank"):
            memory.bank.load_state_dict(state["bank"])
        step, history = int(state["step"]), dict(state["history"])
        if world.main:
            print(f"resumed from {path} at step {step}")

    use_bf16 = cfg.bf16 and world.device.type == "cuda"
    log_path = out / "metrics.jsonl"
    bar = tqdm(total=cfg.schedule.max_steps, initial=step, desc="train", disable=not world.main,
               dynamic_ncols=True)
    timer = time.perf_counter()
    while step < cfg.schedule.max_steps:
        epoch, offset = divmod(step, steps_per_epoch)
        sampler.set_epoch(epoch, start=offset * per_rank)
        for batch in loader:
            batch = batch.to(world.device)
            loss, parts = train_step(net, model, model_cfg, batch, memory, optimizer,
                                     cfg.optim.grad_clip, use_bf16, world)
            scheduler.step()
            step += 1
            if world.main and (step % cfg.log_every == 0 or step == cfg.schedule.max_steps):
                elapsed, timer = time.perf_counter() - timer, time.perf_counter()
                record = {"step": step, "loss": loss, **{f"loss_{k}": v for k, v in
                                                         parts.items()},
                          "lr": optimizer.param_groups[0]["lr"],
                          "step_s": elapsed / cfg.log_every, "epoch": epoch}
                log_line(log_path, record)
                bar.set_postfix(loss=f"{loss:.4f}", lr=f"{record['lr']:.2e}",
                                s_per_step=f"{record['step_s']:.2f}")
            bar.update(1)
            val_due = (cfg.validation.every and step % cfg.validation.every == 0) or (
                step == cfg.schedule.max_steps)
            if val_due and world.main:
                run_validation(cfg, model, model_cfg, labels, world, step, history, log_path)
            if world.main and (step % cfg.checkpoint.every == 0 or val_due):
                best = history.get("best_step") == step  # this step's validation is the best
                checkpoints.save(make_checkpoint(step, cfg, model_cfg, model, optimizer,
                                                 scheduler, memory, labels, history), best=best)
            dd.barrier(world)
            if step >= cfg.schedule.max_steps:
                break
    bar.close()
    if world.main:
        plot_curves(log_path, out / "curves.png")
    dd.teardown()
    return out


def train_step(net: torch.nn.Module, model: AIA, model_cfg: ModelConfig, batch: Batch,
               memory: MemorySource, optimizer: torch.optim.Optimizer,
               grad_clip: float | None, use_bf16: bool,
               world: dd.World) -> tuple[float, dict[str, float]]:
    window = memory.read(batch, model)
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_bf16):
        out = net(batch.clip, batch.person_boxes, batch.object_boxes, window.features,
                  window.mask, window.seconds)
    loss = action_loss(out.logits.float(), batch.targets, model_cfg.classifier.groups)
    optimizer.zero_grad(set_to_none=True)
    loss.total.backward()
    if grad_clip:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    value = dd.mean(float(loss.total.detach()), world)  # the same err on every rank
    memory.after_step(batch, out.person_features, value)
    return value, {k: float(v.detach()) for k, v in loss.groups.items()}


def run_validation(cfg: TrainConfig, model: AIA, model_cfg: ModelConfig,
                   labels: tuple[Label, ...], world: dd.World, step: int,
                   history: dict[str, Any], log_path: Path) -> None:
    val_set = AvaDataset(cfg.data.root, cfg.data.val_split, model_cfg,
                         eval_options(seed=cfg.seed, person_threshold=cfg.data.person_threshold,
                                      cache_dir=cfg.data.cache_dir))
    result = validate(model, model_cfg, val_set, labels, cfg.validation.batch_size,
                      world.device, Path(cfg.out_dir) / "val" / f"step-{step:08d}.csv",
                      cfg.validation.max_videos)
    mean_ap = result.result.mean_ap
    history["last_map"] = mean_ap
    if not math.isnan(mean_ap) and mean_ap > history["best_map"]:
        history["best_map"], history["best_step"] = mean_ap, step
    record = {"step": step, "val_map": mean_ap,
              **{f"val_map_{g}": v for g, v in result.group_map.items()},
              "val_ap": {str(k): v for k, v in result.result.ap.items()}}
    log_line(log_path, record)
    groups = "  ".join(f"{g} {v:.3f}" for g, v in result.group_map.items())
    tqdm.write(f"step {step}: val mAP {mean_ap:.4f}  ({groups})")
