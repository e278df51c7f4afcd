"""The training loop: AMP, gradient accumulation, size progression, torchrun/DDP, exact resume.

Run with `semseg train CONFIG.yaml` (one process) or `torchrun --nproc-per-node N -m semseg_ros
train CONFIG.yaml` (DistributedDataParallel; gloo on CPU, nccl on CUDA). Only rank 0 writes.
Checkpoints (`last.pt`, `best.pt`) are written atomically at the end of every epoch and carry the
model card, the resolved config and the full training state, so `--resume` continues exactly.

A kill at any moment loses and repeats nothing. `last.pt` is the commit point of an epoch: the
epoch's record is appended to history.jsonl (fsynced) before it, and best.pt (a copy of last.pt)
after it. `--resume` drops history records past last.pt's step and epoch, and rewrites best.pt from
last.pt when last.pt's epoch is its best one, so history.jsonl holds every optimizer step and epoch
once and best.pt the best epoch that last.pt records. A fresh start replaces an earlier run's
history.jsonl, last.pt and best.pt in its out_dir. With val in data.train_splits, or in it
at any earlier epoch of the run, no best.pt is written (val figures are then on trained-on images):
last.pt is the model.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import yaml
from torch.utils.data import DataLoader, DistributedSampler, Subset
from tqdm import tqdm

from semseg_ros import schema
from semseg_ros.data.datasets import SegmentationDataset, build_dataset
from semseg_ros.data.transforms import collate_eval, describe_augment, eval_pipeline, train_pipeline
from semseg_ros.errors import SemsegError
from semseg_ros.eval.evaluate import evaluate
from semseg_ros.files import atomic_writer
from semseg_ros.models.card import ModelCard
from semseg_ros.models.checkpoint import load_checkpoint, save_checkpoint, trained_on_val
from semseg_ros.models.factory import build_model
from semseg_ros.train.config import Config
from semseg_ros.train.distill import Distiller, build_distiller
from semseg_ros.train.losses import SegmentationLoss, enet_class_weights


@dataclass
class Distributed:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device_setting: str) -> tuple[Distributed, torch.device]:
    """torchrun sets RANK/WORLD_SIZE/LOCAL_RANK; without them this is a single process."""
    world = Distributed(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0)))
    if device_setting == "auto":
        device = torch.device(f"cuda:{world.local_rank}" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(device_setting)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise SemsegError(f"train.device '{device_setting}' but CUDA is not available; use auto or cpu")
        if device.type == "cuda" and device.index is None:
            device = torch.device(f"cuda:{world.local_rank}")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if world.enabled and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return world, device


def poly_schedule(total_steps: int, warmup_steps: int, power: float) -> Any:
    """Linear warmup, then (1 - progress) ** power."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return max(0.0, 1.0 - progress) ** power

    return factor


def _rng_state() -> dict[str, Any]:
    name, keys, position, has_gauss, cached = np.random.get_state(legacy=True)
    assert isinstance(keys, np.ndarray)
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [name, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, cached],
        "python": random.getstate(),
    }


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    random.setstate(_as_tuple(state["python"]))


def _copy_atomic(source: Path, target: Path) -> None:
    """Copy through files.atomic_writer (its stray temporary files are what resume cleans up)."""
    with atomic_writer(target) as handle, open(source, "rb") as original:
        shutil.copyfileobj(original, handle)


def _as_tuple(value: Any) -> Any:
    return tuple(_as_tuple(v) for v in value) if isinstance(value, list | tuple) else value


class Trainer:
    """One training run: builds everything from a Config and runs (or resumes) the epochs."""

    def __init__(self, config: Config, resume: bool = False):
        self.config = config
        self.world, self.device = init_distributed(config.train.device)
        self.out_dir = Path(config.train.out_dir)
        self.cuda = self.device.type == "cuda"
        self.autocast_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(config.train.amp)
        if not self.cuda and not (config.train.amp_on_cpu and self.autocast_dtype == torch.bfloat16):
            self.autocast_dtype = None  # CPU autocast only in bf16, and only when asked for
        torch.manual_seed(config.train.seed)
        np.random.seed(config.train.seed % 2**32)
        random.seed(config.train.seed)

        self.train_set: SegmentationDataset = build_dataset(config.data, config.data.train_splits)
        self.train_set.seed = config.train.seed
        self.label_set = self.train_set.label_set
        val_set = build_dataset(config.data, "val", eval_pipeline(config.train.input_size, config.mean, config.std))
        self.val_set = Subset(val_set, range(self.world.rank, len(val_set), self.world.world_size))
        self.sampler: DistributedSampler[Any] = DistributedSampler(
            self.train_set, self.world.world_size, self.world.rank, shuffle=True, seed=config.train.seed, drop_last=True
        )

        model = build_model(config.model, self.label_set.num_classes).to(self.device)
        if self.cuda and config.train.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model
        if config.train.init_weights and not resume:
            self._init_weights(config.train.init_weights)
        weights = enet_class_weights(self._pixel_counts()) if config.loss.auto_class_weights else None
        if weights is not None and self.world.is_main:
            print(
                "class weights: " + ", ".join(f"{c} {w:.2f}" for c, w in zip(self.label_set.classes, weights.tolist(), strict=True)),
                flush=True,
            )
        if self.world.is_main:
            print(config.describe_sizes(), flush=True)
            print(describe_augment(config.augment), flush=True)
        self.loss = SegmentationLoss(config.loss, class_weights=weights).to(self.device)
        self.distiller: Distiller | None = None
        if config.distill.teacher:
            self.distiller = build_distiller(config.distill, list(self.label_set.classes), config.mean, config.std, self.device)
            if self.cuda and config.train.channels_last:
                self.distiller.teacher.to(memory_format=torch.channels_last)
        self.optimizer = self._optimizer()
        per_rank = len(self.train_set) // self.world.world_size
        batches = per_rank // config.data.batch_size
        if batches == 0:
            raise SemsegError(f"{len(self.train_set)} training images are fewer than one batch of {config.data.batch_size} per process")
        if config.train.max_steps_per_epoch:
            batches = min(batches, config.train.max_steps_per_epoch)
        self.batches_per_epoch = batches
        self.steps_per_epoch = math.ceil(batches / config.optim.accumulate)
        total = self.steps_per_epoch * config.train.epochs
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, poly_schedule(total, config.optim.warmup_steps, config.optim.poly_power)
        )
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.autocast_dtype == torch.float16)
        self.epoch = 0
        self.step = 0
        self.best_miou = -1.0
        self.best_epoch = 0
        # Once val images have trained the network, no later val figure can choose a best.pt either.
        self.val_trained = config.data.folds_val
        if resume:
            self._resume()
        elif self.world.is_main:
            self._start_new_run()
        self.network: torch.nn.Module = self.model
        if self.world.enabled:
            self.network = torch.nn.parallel.DistributedDataParallel(self.model, device_ids=[self.device.index] if self.cuda else None)
        if config.train.compile:
            self.network = torch.compile(self.network)  # type: ignore[assignment]
        self.writer = None
        if self.world.is_main:
            from torch.utils.tensorboard import SummaryWriter

            self.out_dir.mkdir(parents=True, exist_ok=True)
            (self.out_dir / "config.yaml").write_text(yaml.safe_dump(schema.dump(config), sort_keys=False))
            self.writer = SummaryWriter(str(self.out_dir / "tensorboard"))

    def _pixel_counts(self) -> torch.Tensor:
        """Pixels per class over the training masks (for automatic class weights)."""
        counts = torch.zeros(256, dtype=torch.int64)
        for index in range(len(self.train_set)):
            _, mask = self.train_set.load(index)
            counts += torch.bincount(torch.from_numpy(mask).reshape(-1).long(), minlength=256)
        return counts[: self.label_set.num_classes]

    def _optimizer(self) -> torch.optim.Optimizer:
        optim = self.config.optim
        params = [p for p in self.model.parameters() if p.requires_grad]
        if optim.name == "sgd":
            return torch.optim.SGD(params, lr=optim.lr, momentum=optim.momentum, weight_decay=optim.weight_decay)
        return torch.optim.AdamW(params, lr=optim.lr, weight_decay=optim.weight_decay)

    # ---------------------------------------------------------------- state
    def _init_weights(self, path: str) -> None:
        """Fine-tuning start: copy every tensor whose name and shape match (a new head stays random)."""
        checkpoint = load_checkpoint(path)
        source = checkpoint["model_state"]
        own = self.model.state_dict()
        matched = {k: v.to(own[k].dtype) for k, v in source.items() if k in own and own[k].shape == v.shape}
        if not matched:
            raise SemsegError(f"train.init_weights {path}: no tensor matches model {self.config.model.arch}/{self.config.model.encoder}")
        self.model.load_state_dict(matched, strict=False)
        if self.world.is_main:
            print(f"init_weights: {len(matched)} of {len(own)} tensors from {path}", flush=True)
            stored_data = (checkpoint.get("config") or {}).get("data") or {}
            same_data = (stored_data.get("format"), stored_data.get("root")) == (self.config.data.format, self.config.data.root)
            if same_data and trained_on_val(checkpoint) and not self.config.data.folds_val:
                print(
                    f"init_weights: warning: {path} trained on this dataset's val images: val figures and best.pt of this run flatter it",
                    flush=True,
                )

    def _resume(self) -> None:
        path = self.out_dir / "last.pt"
        if not path.is_file():
            raise SemsegError(f"--resume: no checkpoint at {path}; start without --resume or point train.out_dir at the run")
        data = load_checkpoint(path, map_location=self.device)
        state = data.get("train_state")
        if state is None:
            raise SemsegError(f"{path}: has no training state to resume from")
        self.model.load_state_dict(data["model_state"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.epoch, self.step, self.best_miou = state["epoch"], state["step"], state["best_miou"]
        self.best_epoch = state.get("best_epoch", 0)
        committed_val_trained = trained_on_val(data)
        self.val_trained = self.val_trained or committed_val_trained
        _set_rng_state(state["rng"])
        if self.distiller is not None:
            self.distiller.load_training_state(state.get("distiller", {}))
        if self.world.is_main:
            self._trim_history()
            for stale in self.out_dir.glob(".*.pt.*.tmp"):  # left by a run killed while writing a checkpoint
                stale.unlink(missing_ok=True)
            if committed_val_trained:
                self._drop_best()  # killed between the commit of an epoch trained on val and the removal
                if not self.config.data.folds_val:
                    print(
                        "val was in data.train_splits earlier in this run: its figures are on trained-on images, so no best.pt is chosen (last.pt is the model)",
                        flush=True,
                    )
            elif self.best_epoch and self.best_epoch == self.epoch:  # killed before (or while) best.pt was copied
                _copy_atomic(path, self.out_dir / "best.pt")
        self._log_line({"event": "resume", "epoch": self.epoch, "step": self.step})
        if self.world.is_main:
            print(f"resumed from {path}: epoch {self.epoch} of {self.config.train.epochs} done, step {self.step}", flush=True)

    def _drop_best(self) -> None:
        """Remove a best.pt chosen on val before val trained the network (`semseg eval` would pick it up)."""
        best = self.out_dir / "best.pt"
        if best.exists():
            best.unlink()
            print(f"{best}: removed (val is in data.train_splits: last.pt is the model)", flush=True)

    def _start_new_run(self) -> None:
        """A fresh start: an earlier run's records and checkpoints in out_dir go (last.pt first, so that a
        kill half-way leaves nothing to resume from), and history.jsonl starts empty."""
        earlier = [self.out_dir / name for name in ("last.pt", "best.pt", "history.jsonl") if (self.out_dir / name).exists()]
        for path in [*earlier, *self.out_dir.glob(".*.pt.*.tmp")]:  # temporaries: a kill during the first checkpoint write
            path.unlink(missing_ok=True)
        if earlier:
            print(f"new run in {self.out_dir}: replaced the earlier run's {', '.join(p.name for p in earlier)}", flush=True)

    def _trim_history(self) -> None:
        """Drop records written after the checkpoint we resume from, so history.jsonl reads like one run."""
        path = self.out_dir / "history.jsonl"
        if not path.is_file():
            return
        kept = []
        for line in path.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by the kill
            late = (record.get("event") == "step" and record["step"] > self.step) or (
                record.get("event") == "epoch" and record["epoch"] > self.epoch
            )
            if not late:
                kept.append(line)
        trimmed = path.with_name(f".{path.name}.tmp")
        trimmed.write_text("".join(f"{line}\n" for line in kept))
        os.replace(trimmed, path)  # a kill right now leaves the old history, never half of it

    def _save(self, name: str, metrics: dict[str, Any]) -> None:
        state = {
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "epoch": self.epoch,
            "step": self.step,
            "best_miou": self.best_miou,
            "best_epoch": self.best_epoch,
            "val_trained": self.val_trained,
            "rng": _rng_state(),
            "distiller": self.distiller.training_state() if self.distiller is not None else {},
        }
        config = self.config
        card = ModelCard.build(config.model, self.label_set, config.train.input_size, config.mean, config.std)
        save_checkpoint(self.out_dir / name, self.model, card, config=schema.dump(self.config), train_state=state, metrics=metrics)

    def _log_line(self, record: dict[str, Any], durable: bool = False) -> None:
        """Append one JSON record to history.jsonl (rank 0); `durable` fsyncs it (before a checkpoint commits it)."""
        if self.world.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            with open(self.out_dir / "history.jsonl", "a") as handle:
                handle.write(json.dumps(record) + "\n")
                if durable:
                    handle.flush()
                    os.fsync(handle.fileno())

    # ---------------------------------------------------------------- loop
    def fit(self, stop_after_epochs: int | None = None) -> dict[str, Any]:
        """Train until train.epochs (or for at most `stop_after_epochs` more); returns the last metrics."""
        metrics: dict[str, Any] = {}
        start = time.perf_counter()
        end = self.config.train.epochs if stop_after_epochs is None else min(self.config.train.epochs, self.epoch + stop_after_epochs)
        while self.epoch < end:
            train_loss = self._train_epoch()
            self.epoch += 1
            metrics = {"epoch": self.epoch, "train_loss": train_loss}
            metrics["elapsed_s"] = round(time.perf_counter() - start, 1)
            if self.epoch % self.config.train.val_every == 0 or self.epoch == self.config.train.epochs:
                metrics.update(self._validate())
            if self.world.is_main:
                # With val folded into training its figures are on training images: no best.pt to choose.
                improved = not self.val_trained and metrics.get("mIoU", -1.0) > self.best_miou
                if improved:
                    self.best_miou, self.best_epoch = metrics["mIoU"], self.epoch
                self._log_line({"event": "epoch", **metrics}, durable=True)
                self._save("last.pt", metrics)  # the epoch's commit point (see the module docstring)
                if improved:
                    _copy_atomic(self.out_dir / "last.pt", self.out_dir / "best.pt")
                if self.val_trained:
                    self._drop_best()  # chosen on val before val joined training (kept until now: a kill loses nothing)
                shown = ", ".join(
                    f"{k} {v:g}" if k == "elapsed_s" else f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                    for k, v in metrics.items()
                    if k not in ("iou", "epoch")  # the line starts with the epoch
                )
                print(f"epoch {self.epoch}/{self.config.train.epochs}: {shown}", flush=True)
        if self.world.enabled:
            checksum = sum(float(p.detach().double().sum()) for p in self.model.parameters())
            print(f"rank {self.world.rank}: parameter checksum {checksum:.12e}", flush=True)
        if self.writer is not None:
            self.writer.close()
        return metrics

    def _train_epoch(self) -> float:
        config = self.config
        self.train_set.transform = train_pipeline(config.crop_size(self.epoch), config.augment, config.mean, config.std, config.train.seed)
        self.train_set.set_epoch(self.epoch)
        self.sampler.set_epoch(self.epoch)
        loader = DataLoader(
            self.train_set,
            batch_size=config.data.batch_size,
            sampler=self.sampler,
            num_workers=config.data.workers,
            drop_last=True,
            pin_memory=self.cuda,
        )
        self.network.train()
        accumulate = config.optim.accumulate
        losses: list[float] = []
        bar = tqdm(
            total=self.batches_per_epoch,
            desc=f"epoch {self.epoch + 1}",
            unit="batch",
            disable=None if self.world.is_main else True,  # None: off when stderr is no terminal
            leave=False,
        )
        start = time.perf_counter()
        self.optimizer.zero_grad(set_to_none=True)
        for index, (images, masks) in enumerate(loader):
            if index >= self.batches_per_epoch:
                break
            images = images.to(self.device, non_blocking=True)
            masks = masks.to(self.device, non_blocking=True)
            if self.cuda and config.train.channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            with torch.autocast(self.device.type, dtype=self.autocast_dtype, enabled=self.autocast_dtype is not None):
                outputs = self.network(images, all_outputs=True)
                if self.distiller is not None:
                    kd_loss, kd_terms = self.distiller(outputs, images, masks)
            loss, terms = self.loss(outputs, masks)
            if self.distiller is not None:
                loss, terms = loss + kd_loss, {**terms, **kd_terms}
            self.scaler.scale(loss / accumulate).backward()
            losses.append(float(loss.detach()))
            if (index + 1) % accumulate == 0 or index + 1 == self.batches_per_epoch:
                self._optimizer_step()
                if self.world.is_main:
                    self._log_step(float(loss.detach()), terms)
            bar.set_postfix(loss=f"{losses[-1]:.3f}", img_s=f"{(index + 1) * images.shape[0] / (time.perf_counter() - start):.1f}")
            bar.update()
        bar.close()
        return float(np.mean(losses)) if losses else float("nan")

    def _optimizer_step(self) -> None:
        if self.config.optim.clip_grad:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.optim.clip_grad)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        self.step += 1

    def _log_step(self, loss: float, terms: dict[str, float]) -> None:
        lr = self.optimizer.param_groups[0]["lr"]
        self._log_line({"event": "step", "epoch": self.epoch, "step": self.step, "loss": loss, "lr": lr, **terms})
        if self.writer is not None:
            self.writer.add_scalar("train/loss", loss, self.step)
            self.writer.add_scalar("train/lr", lr, self.step)
            for name, value in terms.items():
                self.writer.add_scalar(f"train/{name}", value, self.step)

    def _validate(self) -> dict[str, Any]:
        loader = DataLoader(
            self.val_set, batch_size=self.config.data.val_batch_size, num_workers=self.config.data.workers, collate_fn=collate_eval
        )
        matrix = evaluate(self.model, loader, self.label_set.num_classes, self.device, self.autocast_dtype)
        iou = matrix.iou()
        metrics: dict[str, Any] = {
            "mIoU": matrix.mean_iou(),
            "pixel_acc": matrix.pixel_accuracy(),
            "iou": {c: (None if math.isnan(v) else float(v)) for c, v in zip(self.label_set.classes, iou, strict=True)},
        }
        if self.writer is not None:
            self.writer.add_scalar("val/mIoU", metrics["mIoU"], self.step)
            self.writer.add_scalar("val/pixel_acc", metrics["pixel_acc"], self.step)
            for name, value in metrics["iou"].items():
                if value is not None:
                    self.writer.add_scalar(f"val/iou/{name}", value, self.step)
            self._log_images()
        return metrics

    def _log_images(self) -> None:
        """image | GT | prediction rows for the first few validation images."""
        assert self.writer is not None
        count = min(self.config.train.log_images, len(self.val_set))
        if count == 0:
            return
        palette = torch.from_numpy(self.label_set.palette())
        mean = torch.tensor(self.config.mean).view(3, 1, 1)
        std = torch.tensor(self.config.std).view(3, 1, 1)
        rows = []
        self.model.eval()
        with torch.no_grad():
            for index in range(count):
                image, mask = self.val_set[index]
                logits = self.model(image[None].to(self.device)).float().cpu()
                size = tuple(image.shape[-2:])
                gt = torch.nn.functional.interpolate(mask[None, None].float(), size=size, mode="nearest")[0, 0].long()
                prediction = logits.argmax(1)[0]
                picture = (image * std + mean).clamp(0, 1)
                rows.append(torch.cat([picture, palette[gt].permute(2, 0, 1) / 255.0, palette[prediction].permute(2, 0, 1) / 255.0], dim=2))
        self.model.train()
        self.writer.add_images("val/image_gt_prediction", torch.stack(rows), self.step)


def train(config: Config, resume: bool = False, stop_after_epochs: int | None = None) -> dict[str, Any]:
    """Build a Trainer and run it; tears down the process group afterwards."""
    trainer = Trainer(config, resume=resume)
    try:
        return trainer.fit(stop_after_epochs)
    finally:
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
