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
from image_segmenter_ros.tools import demo
from image_segmenter_ros.tools.bag_io import BagReader
import pytest
from ros_harness import PACKAGE_ROOT, track

FRAMES = 12


def run_demo(env, tmp_path, *args):
    output = tmp_path / 'output'
    process = track(subprocess.Popen(
        [sys.executable, '-m', 'image_segmenter_ros.tools.demo', '--output', str(output),
         '--frames', str(FRAMES), *args], cwd=PACKAGE_ROOT, env=dict(
            env, IMAGE_SEGMENTER_DEMO_DOMAIN_ID=env['ROS_DOMAIN_ID']),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    text = process.communicate(timeout=180)[0]
    return process.returncode, text, output


def test_demo_segments_every_frame_and_writes_the_picture_again_and_again(env, tmp_path):
    for model in ('selfie_segmentation', 'selfie_segmentation_landscape'):
        code, text, output = run_demo(env, tmp_path, '--keep-bags', '--model', model)
        assert code == 0, text
        assert 'recorded %d masks per output' % FRAMES in text, text
        picture = cv2.imread(str(output / 'demo.png'))
        assert picture is not None and picture.shape[0] > 200 and picture.shape[1] > 600
        with BagReader(output / 'megamind_recording') as recording:
            assert recording.count(['/camera/category_mask']) == FRAMES


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
