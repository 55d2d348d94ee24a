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

.PHONY: setup models videos demo test test-noble bench clean

setup: $(VENV)/.installed models videos install/.built

# ros2 launch / ros2 run: the launch stack from ../shared/ros2-jazzy-src (or a sourced ROS) and
# the package in a colcon install space (`source install/setup.bash`).
install/.built: $(VENV)/.installed tools/install_ros_launch.sh setup.py package.xml $(wildcard launch/*)
	tools/install_ros_launch.sh $(VENV) ../shared/ros2-jazzy-src
	touch $@

$(VENV)/.installed: requirements.txt requirements-ros.txt requirements-test.txt setup.py
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt -r requirements-test.txt
	$(PY) -m pip install --quiet --no-deps mediapipe==1.2.2
	$(PY) -m pip install --quiet --no-deps --editable .
	touch $@

# A folder of official model files beside the checkout is used as a mirror when present.
MODEL_MIRROR ?= $(wildcard ../shared/models)

models: $(VENV)/.installed
	$(VENV)/bin/fetch_models fetch --available $(if $(MODEL_MIRROR),--mirror $(MODEL_MIRROR))

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

# The second test stack: Ubuntu 24.04's versions of the packages package.xml takes from apt (what a
# Jazzy robot has), then requirements-robot.txt installed as a robot installs it, which must leave
# them all as they were; the ROS wheels and test tools on top are held to them too.
# It runs on this machine's Python (Ubuntu 24.04's is 3.12).
NOBLE    := .venv-noble
NOBLE_PY := $(NOBLE)/bin/python
# The part that depends on numpy, OpenCV and numba: engine parity with MediaPipe, pre- and
# postprocessing, message conversions, and the node and bag tools over real DDS and bags.
NOBLE_TESTS ?= test/test_engine_parity.py test/test_preprocessing.py test/test_postprocessing.py \
	test/test_image_conversions.py test/test_image_segmenter_node.py test/test_bag_tools.py

$(NOBLE)/.installed: requirements-noble.txt requirements-robot.txt requirements-ros.txt \
		requirements-test.txt setup.py
	rm -rf $(NOBLE)
	python3 -m venv $(NOBLE)
	$(NOBLE_PY) -m pip install --quiet --upgrade pip
	$(NOBLE_PY) -m pip install --quiet -r requirements-noble.txt
	$(NOBLE_PY) -m pip install --quiet -r requirements-robot.txt
	$(NOBLE_PY) -m pip freeze > $(NOBLE)/after-robot.txt
	grep -v '^#' requirements-noble.txt | while read -r pin; do \
	  grep -qix "$$pin" $(NOBLE)/after-robot.txt || \
	  { echo "requirements-robot.txt replaced the distribution's $$pin"; exit 1; }; done
	$(NOBLE_PY) -m pip install --quiet -c requirements-noble.txt -r requirements-ros.txt \
	  -r requirements-test.txt
	$(NOBLE_PY) -m pip install --quiet --no-deps mediapipe==1.2.2
	$(NOBLE_PY) -m pip install --quiet --no-deps --editable .
	touch $@

test: setup $(NOBLE)/.installed
	$(PY) -m pytest -q --durations=15 test
	$(NOBLE_PY) -m pytest -q $(NOBLE_TESTS)

test-noble: $(NOBLE)/.installed models videos
	$(NOBLE_PY) -m pytest -q $(NOBLE_TESTS)

# The benchmark suite: engine vs MediaPipe vs bare LiteRT, the node over DDS, segment_bag;
# writes docs/benchmarks.md and docs/images/benchmarks.png.
bench: setup
	$(PY) benchmarks/run_benchmarks.py

# Burst, sustained rate, VIDEO, soak and two-camera runs of the node; writes docs/reliability.md.
.PHONY: stress
stress: setup
	$(PY) benchmarks/stress_benchmark.py

clean:
	rm -rf $(VENV) $(NOBLE) output build install log
