# Copyright 2026 The image_segmenter_ros Authors
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.

"""Shared fixtures: real video frames, real models, the test models built from their specs."""

import os
from pathlib import Path
import signal
from typing import Callable, Dict, Iterator, List

import cv2
from diagnostic_msgs.msg import DiagnosticArray
from image_segmenter_ros import ImageSegmenter, ImageSegmenterOptions
from image_segmenter_ros.engine import model_catalog
import numpy as np
import pytest
from ros_harness import domain_id, Probe, remove_stale_shared_memory, ros_environment, STARTED

VIDEO_DIR = Path(os.environ.get('IMAGE_SEGMENTER_ROS_VIDEO_DIR',
                                Path.home() / '.cache' / 'image_segmenter_ros' / 'videos'))
LEGACY_MODELS = ('selfie_segmentation', 'selfie_segmentation_landscape')
# Official model files beside the checkout (CI); a fresh clone may not have them.
MODEL_MIRROR = Path(__file__).resolve().parents[2] / 'shared' / 'models'

# The tests stop the processes they start with SIGINT, as Ctrl-C in a terminal does. Started
# as a shell's background job, pytest would pass on an ignored SIGINT to them all.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def read_frames(name: str, indices: List[int]) -> List[np.ndarray]:
    """RGB frames of a sample video (fetched by ``make videos``)."""
    path = VIDEO_DIR / name
    if not path.exists():
        pytest.fail('Sample video %s is missing: run `make videos` first.' % path)
    capture = cv2.VideoCapture(str(path))
    frames = []
    for index in indices:
        capture.set(cv2.CAP_PROP_POS_FRAMES, index)
        ok, frame = capture.read()
        assert ok, 'cannot read frame %d of %s' % (index, path)
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    capture.release()
    return frames


@pytest.fixture(scope='session')
def megamind_frames() -> List[np.ndarray]:
    """Close-up people (720x528): what the selfie models are for."""
    return read_frames('Megamind.avi', [40, 120, 200])


@pytest.fixture(scope='session')
def street_frames() -> List[np.ndarray]:
    """Pedestrians seen by a fixed camera (768x576)."""
    return read_frames('vtest.avi', [100, 400])


@pytest.fixture(scope='session')
def legacy_models() -> Dict[str, Path]:
    """Resolve the legacy selfie models, fetched by ``make models``."""
    return {name: model_catalog.resolve_model(name) for name in LEGACY_MODELS}


@pytest.fixture(scope='session')
def tasks_model() -> Callable[[str], Path]:
    """
    Return a function giving the verified path of an official Tasks model by short name.

    A model not yet in the cache is fetched (from ../shared/models when present, else from its
    URL); where that fails the calling test is skipped with a reason naming the file.
    """
    missing: Dict[str, str] = {}

    def get(name: str) -> Path:
        if name not in missing:
            try:
                return model_catalog.resolve_model(name)
            except model_catalog.ModelNotFoundError:
                pass
            mirror = str(MODEL_MIRROR) if MODEL_MIRROR.is_dir() else None
            try:
                return model_catalog.fetch(name, mirror=mirror, timeout=10.0)
            except model_catalog.ModelDownloadError as exc:
                missing[name] = str(exc)
        pytest.skip('No model file %s.tflite: %s' % (name, missing[name]))
    return get


@pytest.fixture(scope='session')
def test_models(tmp_path_factory) -> Dict[str, Path]:
    """Small real .tflite models with metadata, built for this test session."""
    from tflite_test_models import write_test_models
    return write_test_models(tmp_path_factory.mktemp('test_models'))


@pytest.fixture(scope='module')
def oracles():
    """Create MediaPipe and the engine on one model file each, on first use (parity tests)."""
    from test_engine_parity import Oracle
    created = {}

    def get(model_path):
        if model_path not in created:
            created[model_path] = Oracle(model_path)
        return created[model_path]
    yield get
    for oracle in created.values():
        oracle.close()


@pytest.fixture(scope='module')
def env(request) -> Dict[str, str]:
    """ROS environment of one test module: loopback DDS and a domain id of its own."""
    remove_stale_shared_memory()  # what the previous modules' processes left behind
    return ros_environment(domain_id(request.module.__name__))


@pytest.fixture(scope='module')
def probe(env):
    """Start a test-side node in the module's domain, already listening to /diagnostics."""
    node = Probe(int(env['ROS_DOMAIN_ID']))
    node.subscribe(DiagnosticArray, '/diagnostics')
    yield node
    node.close()


@pytest.fixture(scope='module')
def engine():
    """Run the engine in this process, both masks: node and bag outputs are compared with it."""
    options = ImageSegmenterOptions(model_path='selfie_segmentation', output_category_mask=True)
    with ImageSegmenter.create_from_options(options) as segmenter:
        yield segmenter


def _kill_running(processes: List) -> None:
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait(10.0)


@pytest.fixture(scope='session', autouse=True)
def stop_every_process_at_the_end() -> Iterator[None]:
    """Kill what still runs when the session ends, e.g. a node whose module set-up failed."""
    yield
    _kill_running(STARTED)


@pytest.fixture(autouse=True)
def stop_processes_left_running() -> Iterator[None]:
    """Kill the processes a test started and did not stop (it failed first): none outlives it."""
    before = len(STARTED)
    yield
    _kill_running(STARTED[before:])
    del STARTED[before:]
