"""`semseg predict` and `semseg video`: run a model over images, folders or KITTI drives and write results."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray
from tqdm import tqdm

from semseg_ros.data.images import MAX_IMAGE_PIXELS, read_label_png, read_rgb
from semseg_ros.errors import SemsegError
from semseg_ros.inference.segmenter import Prediction, Segmenter
from semseg_ros.labels import LabelSet, get_label_set, palette_array
from semseg_ros.pictures import captioned, overlay

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
FORMATS = ("trainid", "labelid", "color", "prob")
KITTI_NAME = re.compile(r"^(umm|um|uu)_(\d+)$")


def find_images(source: str | Path) -> list[tuple[Path, Path]]:
    """(image path, path relative to the input) for a file, a folder (recursive) or a KITTI drive."""
    source = Path(source)
    if source.is_file():
        return [(source, Path(source.name))]
    if not source.is_dir():
        raise SemsegError(f"{source}: input not found (give an image, a folder or a KITTI drive)")
    images = sorted(p for p in source.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if (source / "image_02" / "data").is_dir():  # a KITTI drive: the left colour camera only
        images = [p for p in images if p.parent == source / "image_02" / "data"]
    if not images:
        raise SemsegError(f"{source}: no .png/.jpg images found")
    return [(p, p.relative_to(source)) for p in images]


def output_name(relative: Path, fmt: str) -> Path:
    """Where a result goes, relative to the output folder (KITTI road submission names for prob)."""
    stem = relative.stem
    if fmt == "prob":
        match = KITTI_NAME.match(stem)
        name = f"{match.group(1)}_road_{match.group(2)}.png" if match else f"{stem}_road.png"
    else:
        name = f"{stem}.png"
    return relative.parent / name


def _inside(folder: Path, relative: Path) -> Path:
    target = (folder / relative).resolve()
    if not target.is_relative_to(folder.resolve()):
        raise SemsegError(f"output path {relative} would leave the output folder {folder}")
    return target


def _batches(
    items: list[tuple[Path, Path]], size: int, max_pixels: int, failed: list[str]
) -> Iterator[list[tuple[Path, Path, NDArray[np.uint8]]]]:
    """Consecutive readable images of one size, at most `size` at a time; unreadable ones go to `failed`."""
    batch: list[tuple[Path, Path, NDArray[np.uint8]]] = []
    for path, relative in items:
        try:
            image = read_rgb(path, max_pixels)
        except SemsegError as exc:
            failed.append(str(exc))
            continue
        if batch and (len(batch) == size or batch[0][2].shape != image.shape):
            yield batch
            batch = []
        batch.append((path, relative, image))
    if batch:
        yield batch


class PredictFailures(SemsegError):
    """Some images could not be read; the others were predicted and written (`written`)."""

    def __init__(self, message: str, written: list[Path]):
        super().__init__(message)
        self.written = written


def planned_outputs(
    items: list[tuple[Path, Path]], output: Path, fmt: str, with_overlay: bool, make_zip: bool
) -> list[tuple[Path, Path | None]]:
    """(result path, overlay path or None) per input, refusing a run that would overwrite an input or
    write two results to one path (x.png and x.jpg both give x.png). Raises SemsegError before anything is written."""
    inputs = {}
    for path, _ in items:
        stat = path.stat()
        inputs[(stat.st_dev, stat.st_ino)] = path
    planned = [
        (_inside(output, output_name(rel, fmt)), _inside(output, rel.parent / f"{rel.stem}_overlay.png") if with_overlay else None)
        for _, rel in items
    ]
    owners: dict[Path, Path] = {}
    targets = [(target, source) for (source, _), pair in zip(items, planned, strict=True) for target in pair if target is not None]
    if make_zip:
        targets.append((output.with_suffix(".zip").resolve(), output))
    for target, source in targets:
        if target in owners:
            raise SemsegError(
                f"{owners[target]} and {source} would both be written to {target}; rename one or predict them into separate folders"
            )
        owners[target] = source
        existing = target.stat() if target.exists() else None
        if existing is not None and (clash := inputs.get((existing.st_dev, existing.st_ino))) is not None:
            raise SemsegError(f"writing {target} would overwrite the input {clash}; choose an --output folder apart from the input")
    return planned


def run_predict(
    segmenter: Segmenter,
    source: str | Path,
    output: str | Path,
    fmt: str = "trainid",
    with_overlay: bool = False,
    alpha: float = 0.5,
    batch_size: int = 4,
    make_zip: bool = False,
    progress: bool = True,
    max_pixels: int = MAX_IMAGE_PIXELS,
) -> list[Path]:
    """Predict every image and write `fmt` PNGs (plus overlays); returns the written result files.

    No input and no earlier result of the run is ever overwritten (checked before anything is
    written: SemsegError). Unreadable images (missing, corrupt, over `max_pixels`) are skipped and
    the others written; then `PredictFailures` (a SemsegError) lists every skipped file.
    """
    if fmt not in FORMATS:
        raise SemsegError(f"--format {fmt}: expected one of {', '.join(FORMATS)}")
    card = segmenter.card
    if fmt == "prob" and card.road_index is None:
        raise SemsegError("--format prob needs a model with a 'road' class")
    label_set = None
    if fmt == "labelid":
        if card.label_set != "cityscapes19":
            raise SemsegError(f"--format labelid needs a cityscapes19 model, this one predicts '{card.label_set}'; use trainid or color")
        label_set = get_label_set(card.label_set)
    items = find_images(source)
    output = Path(output)
    plan = dict(zip((path for path, _ in items), planned_outputs(items, output, fmt, with_overlay, make_zip), strict=True))
    output.mkdir(parents=True, exist_ok=True)
    palette = palette_array(card.colors)
    written: list[Path] = []
    failed: list[str] = []
    bar = tqdm(total=len(items), desc="predict", unit="image", disable=None if progress else True)
    for batch in _batches(items, batch_size, max_pixels, failed):
        predictions = segmenter.predict_batch([image for _, _, image in batch], road_probability=fmt == "prob")
        for (path, _, image), prediction in zip(batch, predictions, strict=True):
            target, overlay_path = plan[path]
            target.parent.mkdir(parents=True, exist_ok=True)
            _write(target, _render(prediction, fmt, palette, label_set))
            written.append(target)
            if overlay_path is not None:
                _write(overlay_path, overlay(image, prediction.labels, palette, alpha)[..., ::-1])
        bar.update(len(batch))
    bar.close()
    if make_zip:
        archive = output.with_suffix(".zip")
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as bundle:
            for path in written:
                bundle.write(path, path.relative_to(output.resolve()))
    if failed:
        raise PredictFailures(
            f"{len(failed)} of {len(items)} images could not be read and were skipped ({len(written)} written to {output}): "
            + "; ".join(failed),
            written,
        )
    return written


def _render(prediction: Prediction, fmt: str, palette: NDArray[np.uint8], label_set: LabelSet | None) -> NDArray[np.uint8]:
    if fmt == "trainid":
        return prediction.labels
    if fmt == "labelid":
        assert label_set is not None
        return label_set.to_cityscapes_ids(prediction.labels)
    if fmt == "color":
        return palette[prediction.labels][..., ::-1]
    assert prediction.road_probability is not None
    return prediction.road_probability


def _write(path: Path, image: NDArray[np.uint8]) -> None:
    if not cv2.imwrite(str(path), np.ascontiguousarray(image)):
        raise SemsegError(f"{path}: could not write the image")


class VideoWriter:
    """H.264 MP4 through ffmpeg (odd sizes padded to even) or OpenCV's mp4v writer without ffmpeg."""

    def __init__(self, path: Path, fps: float):
        self.path, self.fps = path, fps
        self.process: subprocess.Popen[bytes] | None = None
        self.writer: cv2.VideoWriter | None = None
        self.size: tuple[int, int] | None = None

    def write(self, frame: NDArray[np.uint8]) -> None:
        height, width = frame.shape[:2]
        if self.size is None:
            self.size = (width, height)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            ffmpeg = shutil.which("ffmpeg")
            if ffmpeg:
                command = [ffmpeg, "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-r", str(self.fps), "-i", "-",
                           "-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2", "-c:v", "libx264", "-pix_fmt", "yuv420p", str(self.path)]  # fmt: skip
                self.log = tempfile.TemporaryFile()  # ffmpeg's messages: into the error, never onto the terminal
                self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stderr=self.log)
            else:
                self.writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter.fourcc(*"mp4v"), self.fps, (width, height))
        if (width, height) != self.size:
            frame = np.asarray(cv2.resize(frame, self.size), dtype=np.uint8)
        if self.process is not None and self.process.stdin is not None:
            try:
                self.process.stdin.write(np.ascontiguousarray(frame).tobytes())
            except BrokenPipeError:  # ffmpeg ended early: close() says why
                self.close()
        elif self.writer is not None:
            self.writer.write(frame[..., ::-1])

    def close(self) -> None:
        if self.process is not None and self.process.stdin is not None:
            try:
                self.process.stdin.close()
            except BrokenPipeError:
                pass
            if self.process.wait() != 0:
                self.log.seek(0)
                said = [line.strip() for line in self.log.read().decode(errors="replace").splitlines() if line.strip()]
                raise SemsegError(f"ffmpeg failed to write {self.path}" + (f": {'; '.join(dict.fromkeys(said))}" if said else ""))
        if self.writer is not None:
            self.writer.release()


def gt_for(path: Path) -> NDArray[np.uint8] | None:
    """Synthetic GT beside a KITTI drive image (image_02/semantic), as Cityscapes label ids."""
    semantic = path.parent.parent / "semantic" / path.name
    return read_label_png(semantic) if semantic.is_file() else None


def run_video(
    segmenter: Segmenter,
    source: str | Path,
    out: str | Path,
    fps: float = 10.0,
    alpha: float = 0.5,
    with_gt: bool = False,
    progress: bool = True,
) -> int:
    """Overlay frames into an MP4; returns the frame count.

    With `with_gt` each frame is the GT overlay (left, captioned "ground truth"; black where the frame
    has no image_02/semantic file) beside the prediction's (right, captioned "prediction").
    """
    items = find_images(source)
    palette = palette_array(segmenter.card.colors)
    writer = VideoWriter(Path(out), fps)
    label_set = get_label_set(segmenter.card.label_set) if with_gt else None
    try:
        for path, _ in tqdm(items, desc="video", unit="frame", disable=None if progress else True):
            image = read_rgb(path)
            frame = overlay(image, segmenter.predict(image).labels, palette, alpha)
            if label_set is not None:
                gt = gt_for(path)
                truth = np.zeros_like(image) if gt is None else overlay(image, label_set.map_cityscapes_ids(gt), palette, alpha)
                label = "ground truth" if gt is not None else "ground truth: none for this frame"
                frame = np.concatenate([captioned(truth, label), captioned(frame, "prediction")], axis=1)
            writer.write(frame)
    finally:
        writer.close()
    return len(items)
