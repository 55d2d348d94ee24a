# One entry point for a fresh machine: `make demo` (set up, then run the demo) and
# `make test` (set up, then run every test). Everything is installed by these rules.

VENV    := .venv
PY      := $(VENV)/bin/python
CACHE   ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/image_segmenter_ros
# Directories already set in the environment are used as they are.
export IMAGE_SEGMENTER_ROS_MODEL_DIR ?= $(CACHE)/models
export IMAGE_SEGMENTER_ROS_VIDEO_DIR ?= $(CACHE)/videos
MODELS  := $(IMAGE_SEGMENTER_ROS_MODEL_DIR)
VIDEOS  := $(IMAGE_SEGMENTER_ROS_VIDEO_DIR)

# DDS never leaves this machine (Jazzy spelling; Humble's ROS_LOCALHOST_ONLY must stay unset).
export ROS_AUTOMATIC_DISCOVERY_RANGE := LOCALHOST
unexport ROS_LOCALHOST_ONLY

.PHONY: setup models videos demo test bench clean

setup: $(VENV)/.installed models videos

$(VENV)/.installed: requirements.txt requirements-test.txt setup.py
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt -r requirements-test.txt
	$(PY) -m pip install --quiet --no-deps mediapipe==1.2.2
	$(PY) -m pip install --quiet --no-deps --editable .
	touch $@

models: $(VENV)/.installed
	$(VENV)/bin/fetch_models fetch --available

videos: $(VIDEOS)/Megamind.avi

# Real sample videos from Debian's opencv-doc package, extracted without installing it.
$(VIDEOS)/Megamind.avi:
	mkdir -p $(VIDEOS)/deb
	cd $(VIDEOS)/deb && (apt-get download opencv-doc 2>/dev/null || (apt-get update -qq && apt-get download opencv-doc))
	dpkg-deb -x $(VIDEOS)/deb/opencv-doc_*.deb $(VIDEOS)/deb/root
	cp $(VIDEOS)/deb/root/usr/share/doc/opencv-doc/examples/data/Megamind.avi \
	   $(VIDEOS)/deb/root/usr/share/doc/opencv-doc/examples/data/vtest.avi $(VIDEOS)/
	rm -rf $(VIDEOS)/deb

demo: setup
	$(PY) -m image_segmenter_ros.tools.demo --output output

test: setup
	$(PY) -m pytest -q test

# The benchmark suite: engine vs MediaPipe vs bare LiteRT, the node over DDS, segment_bag;
# writes docs/benchmarks.md and docs/images/benchmarks.png.
bench: setup
	$(PY) benchmarks/run_benchmarks.py

# Burst, sustained rate, VIDEO, soak and two-camera runs of the node; writes docs/reliability.md.
.PHONY: stress
stress: setup
	$(PY) benchmarks/stress_benchmark.py

clean:
	rm -rf $(VENV) output build install log
