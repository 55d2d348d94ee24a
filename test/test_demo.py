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

"""The README's main job, shortened: real video, bag, node over DDS, recording, picture."""

import os
from pathlib import Path
import subprocess
import sys

import cv2
from image_segmenter_ros.engine import model_catalog
from image_segmenter_ros.tools import demo
from image_segmenter_ros.tools.bag_io import BagReader
import pytest
from ros_harness import PACKAGE_ROOT, track

FRAMES = 12


def run_demo(env, tmp_path, *args, **variables):
    output = tmp_path / 'output'
    process = track(subprocess.Popen(
        [sys.executable, '-m', 'image_segmenter_ros.tools.demo', '--output', str(output),
         '--frames', str(FRAMES), *args], cwd=PACKAGE_ROOT, env=dict(
            env, IMAGE_SEGMENTER_DEMO_DOMAIN_ID=env['ROS_DOMAIN_ID'], **variables),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    text = process.communicate(timeout=300)[0]
    return process.returncode, text, output


def assert_picture(path: Path) -> None:
    picture = cv2.imread(str(path))
    assert picture is not None and picture.shape[0] > 200 and picture.shape[1] > 600, path


def installed(model: str) -> bool:
    try:
        model_catalog.resolve_model(model)
    except model_catalog.ModelNotFoundError:
        return False
    return True


def assert_said_not_installed(text: str, extra: str, models: Path) -> None:
    lines = [line for line in text.splitlines() if line.startswith('No %s picture' % extra)]
    assert lines == ["No %s picture: Model '%s' has not been fetched yet (expected at %s); "
                     'fetch it with `ros2 run image_segmenter_ros fetch_models %s` or '
                     '`python3 -m image_segmenter_ros.engine.model_catalog fetch %s`.'
                     % (extra, extra, models / (extra + '.tflite'), extra, extra)], text


def test_demo_segments_every_frame_and_writes_the_pictures_again_and_again(env, tmp_path):
    """Every picture through the node; again, with a model cache lacking the extra models."""
    # The main model, then the multi-class and hair pictures through the node too (CI has
    # their files from ../shared/models).
    extras = {extra: installed(extra) for extra in demo.EXTRA_MODELS}
    code, text, output = run_demo(env, tmp_path, '--keep-bags')
    assert code == 0, text
    assert text.count('recorded %d masks per output' % FRAMES) == 1 + sum(extras.values()), text
    assert_picture(output / 'demo.png')
    for extra, present in extras.items():
        if not present:
            assert_said_not_installed(text, extra, model_catalog.model_dir())
            continue
        assert_picture(output / ('demo_%s.png' % extra))
        with BagReader(output / extra / 'megamind_recording') as recording:
            assert recording.count(['/camera/category_mask']) == FRAMES
        (output / ('demo_%s.png' % extra)).unlink()
    with BagReader(output / 'megamind_recording') as recording:
        assert recording.count(['/camera/category_mask']) == FRAMES

    # Again into the same folder, where the extra models are not installed: one line each.
    models = tmp_path / 'models'  # a model cache holding only the main model
    models.mkdir()
    main_model = model_catalog.resolve_model('selfie_segmentation_landscape')
    (models / main_model.name).symlink_to(main_model)
    code, text, output = run_demo(env, tmp_path, '--model', 'selfie_segmentation_landscape',
                                  '--keep-bags', IMAGE_SEGMENTER_ROS_MODEL_DIR=str(models))
    assert code == 0, text
    assert text.count('recorded %d masks per output' % FRAMES) == 1, text
    assert_picture(output / 'demo.png')
    for extra in extras:
        assert_said_not_installed(text, extra, models)
        assert not (output / ('demo_%s.png' % extra)).exists()


def test_demo_with_a_model_it_has_no_file_for_says_so_in_one_sentence(env, tmp_path):
    code, text, _ = run_demo(env, tmp_path, '--model', 'no_such_model')
    assert code == 1
    assert text.strip() == 'demo: error: No file config/no_such_model.yaml.', text


@pytest.mark.parametrize('variable', ['FASTDDS_DEFAULT_PROFILES_FILE',
                                      'FASTRTPS_DEFAULT_PROFILES_FILE'])
def test_demo_keeps_a_dds_profile_the_user_set_under_either_name(variable, monkeypatch,
                                                                 tmp_path):
    profile = str(tmp_path / 'site_profile.xml')
    monkeypatch.setattr(os, 'environ', {variable: profile, 'ROS_LOCALHOST_ONLY': '1'})
    children = demo.use_demo_environment()
    assert children['FASTDDS_DEFAULT_PROFILES_FILE'] == profile
    assert children['FASTRTPS_DEFAULT_PROFILES_FILE'] == profile
    assert children['ROS_AUTOMATIC_DISCOVERY_RANGE'] == 'LOCALHOST'
    assert 'ROS_LOCALHOST_ONLY' not in children


def test_demo_brings_its_large_image_profile_when_none_is_set(monkeypatch):
    monkeypatch.setattr(os, 'environ', {})
    profile = Path(demo.use_demo_environment()['FASTDDS_DEFAULT_PROFILES_FILE'])
    assert profile.name == 'fastdds_large_images.xml' and profile.is_file()
