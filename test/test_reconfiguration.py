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

"""
Run-time reconfiguration of the running node over DDS, while a camera streams at 30 Hz.

The model goes selfie_segmentation -> deeplab_v3 -> hair_segmenter -> back (deeplab_v3 is
replaced by a generated six-class model, hair_segmenter's leg skipped, where their official
files are absent). Every category mask must equal what exactly one model of the sequence
makes of its frame, in the order of the switches: no frame is processed with mixed settings.
"""

import shutil
import time
from typing import Any, List

import cv2
from image_segmenter_ros import ImageSegmenter, ImageSegmenterOptions
from image_segmenter_ros.engine import model_catalog
from image_segmenter_ros.node.output_messages import confidence_topics
from image_segmenter_ros.node.parameters import default_model_directories
import numpy as np
import pytest
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters, SetParametersAtomically
from rclpy.qos import QoSProfile, QoSReliabilityPolicy
from ros_harness import LATCHED, wait_until
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import String
from test_image_segmenter_node import (Camera, image_msg, MODEL, NodeUnderTest, pixels,
                                       start)
import yaml

NODE = '/r/image_segmenter'
CAMERA = '/cam/r'


def available(name: str) -> bool:
    try:
        model_catalog.resolve_model(name)
    except FileNotFoundError:
        return False
    return True


def labels_of(model: str) -> List[str]:
    with ImageSegmenter.create_from_options(ImageSegmenterOptions(model_path=model)) as engine:
        return list(engine.labels)


def string(value: str) -> ParameterValue:
    return ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=value)


@pytest.fixture(scope='module')
def frames(megamind_frames) -> List[np.ndarray]:
    return [cv2.resize(frame, (320, 240), interpolation=cv2.INTER_AREA)
            for frame in megamind_frames]


def test_model_switches_under_load_never_mix_models(env, probe, tmp_path_factory, frames,
                                                    test_models):
    many = 'deeplab_v3' if available('deeplab_v3') else str(test_models['multiclass_softmax'])
    hair = ['hair_segmenter'] if available('hair_segmenter') else []  # else that leg is skipped
    outside = tmp_path_factory.mktemp('not_allowed') / 'selfie.tflite'
    shutil.copy(model_catalog.resolve_model(MODEL), outside)
    directories = default_model_directories() + [str(test_models['multiclass_softmax'].parent)]
    process = start(env, tmp_path_factory, 'reconfigured', [
        '--params-file', 'config/%s.yaml' % MODEL, '-r', 'image:=' + CAMERA, '-r', '__ns:=/r',
        '-p', 'model_directories:=[%s]' % ', '.join(directories)])
    node = NodeUnderTest(probe, process, '/r', CAMERA, input_qos=QoSProfile(
        depth=5, reliability=QoSReliabilityPolicy.RELIABLE))
    probe.subscribe(Image, node.topic('category_mask'))
    probe.subscribe(String, node.topic('labels'), LATCHED)
    node.wait_connected(['category_mask'])
    camera = Camera(node, frames)

    def masks() -> List[Any]:
        return probe.messages(node.topic('category_mask'))

    def set_model(value: str) -> Any:
        return probe.call(SetParameters, NODE + '/set_parameters', SetParameters.Request(
            parameters=[Parameter(name='model', value=string(value))])).results[0]

    def serving(model: str) -> None:
        """Wait for the labels of ``model`` and ten more masks."""
        probe.wait_for(node.topic('labels'), lambda m: yaml.safe_load(m.data)['model'] == model)
        count = len(masks())
        wait_until(lambda: len(masks()) >= count + 10, 20.0, 'masks of %s:\n%s' % (
            model, process.log))

    sequence = [MODEL, many] + hair + [MODEL]
    try:
        serving(MODEL)
        for model in sequence[1:]:
            result = set_model(model)
            assert result.successful, result.reason
            serving(model)
            topics = {node.topic(topic) for topic in confidence_topics(labels_of(model))}
            graph = {name for name, _ in probe.node.get_topic_names_and_types()
                     if name.startswith(node.topic('confidence_masks/'))}
            assert graph == topics, (model, graph)  # stale confidence topics are gone
            if model == many:  # a bad value, while a model serves: refused, the model goes on
                refused = set_model(str(outside))
                assert not refused.successful and refused.reason.startswith(
                    "Parameter 'model' ('%s'): at run time only a model of the manifest" % outside)
                missing = set_model(str(test_models['multiclass_softmax'].parent / 'no.tflite'))
                assert not missing.successful and "Parameter 'model'" in missing.reason
                wrong = probe.call(SetParameters, NODE + '/set_parameters', SetParameters.Request(
                    parameters=[Parameter(name='num_threads', value=string('many'))])).results[0]
                assert wrong.reason == ("Parameter 'num_threads' must be an integer from 1 to 64, "
                                        'got many.')
                serving(model)
        # Changes sent at once, while the first one loads: applied in order, none lost.
        burst = [many] + hair + [MODEL]
        client = probe.node.create_client(SetParameters, NODE + '/set_parameters')
        futures = [client.call_async(SetParameters.Request(parameters=[
            Parameter(name='model', value=string(model))])) for model in burst]
        wait_until(lambda: all(future.done() for future in futures), 30.0, 'the answers')
        assert all(future.result().results[0].successful for future in futures)
        probe.node.destroy_client(client)
        sequence += burst
        serving(MODEL)
        values = node.diagnostics(lambda v: v['model'] == MODEL)
        assert values['last reconfiguration'].startswith('model %s -> %s (loaded in ' % (
            burst[-2], MODEL))
    finally:
        camera.stop()
    changes = [line.split('Reconfigured: model ', 1)[1].split(' (', 1)[0]
               for line in process.log.splitlines() if 'Reconfigured: model ' in line]
    assert changes == ['%s -> %s' % pair for pair in zip(sequence, sequence[1:])], changes
    labels = [yaml.safe_load(m.data)['model'] for m in probe.messages(node.topic('labels'))]
    assert labels == sequence, labels

    # Each mask is what exactly one model of the sequence makes of its frame, in order.
    expected = {}
    for model in set(sequence):
        with ImageSegmenter.create_from_options(ImageSegmenterOptions(
                model_path=model, output_category_mask=True)) as engine:
            expected[model] = [engine.segment(frame).category_mask for frame in frames]
    phase = 0
    for mask in masks():
        picture = camera.sent[mask.header.frame_id]
        makers = {model for model in expected
                  if np.array_equal(pixels(mask, np.uint8), expected[model][picture])}
        assert makers, 'mask of %s matches no model' % mask.header.frame_id
        while sequence[phase] not in makers:
            phase += 1
            assert phase < len(sequence), 'mask of %s came out of order (%s)' % (
                mask.header.frame_id, makers)
    assert phase == len(sequence) - 1
    node.stop()
    assert 'Traceback' not in process.log


def test_input_mode_transport_and_queue_change_at_run_time(env, probe, tmp_path_factory,
                                                           frames):
    process = start(env, tmp_path_factory, 'input_changes', [
        '--params-file', 'config/%s.yaml' % MODEL, '-r', 'image:=/cam/i', '-r', '__ns:=/i'])
    node = NodeUnderTest(probe, process, '/i', '/cam/i', input_qos=QoSProfile(
        depth=10, reliability=QoSReliabilityPolicy.RELIABLE))
    probe.subscribe(Image, node.topic('category_mask'))
    node.wait_connected(['category_mask'])

    def subscriptions(topic: str) -> List[str]:
        return [info.qos_profile.reliability.name
                for info in probe.node.get_subscriptions_info_by_topic(topic)]
    assert subscriptions('/cam/i') == ['BEST_EFFORT']  # LIVE_STREAM
    result = probe.call(SetParametersAtomically, '/i/image_segmenter/set_parameters_atomically',
                        SetParametersAtomically.Request(parameters=[
                            Parameter(name='running_mode', value=string('VIDEO')),
                            Parameter(name='queue_size', value=ParameterValue(
                                type=ParameterType.PARAMETER_INTEGER, integer_value=30))]))
    assert result.result.successful, result.result.reason
    # VIDEO follows the reliable publisher; every frame sent now comes back, in order.
    wait_until(lambda: subscriptions('/cam/i') == ['RELIABLE'], 10.0, 'a reliable input')
    sent = [image_msg(frames[index % 3], 'rgb8', 'video_%d' % index, 100.0 + index)
            for index in range(30)]
    for msg in sent:
        node.publish(msg)
        time.sleep(1 / 30)
    got = probe.wait_for(node.topic('category_mask'),
                         lambda m: m.header.frame_id.startswith('video_'), count=30)
    assert [m.header.frame_id for m in got] == [m.header.frame_id for m in sent]
    values = node.diagnostics(lambda v: v['running mode'] == 'VIDEO')
    assert values['last reconfiguration'].startswith(
        'running_mode LIVE_STREAM -> VIDEO, queue_size 10 -> 30 (loaded in ')
    result = probe.call(SetParameters, '/i/image_segmenter/set_parameters',
                        SetParameters.Request(parameters=[
                            Parameter(name='input_transport', value=string('compressed'))]))
    assert result.results[0].successful
    probe.node.create_publisher(CompressedImage, '/cam/i/compressed', QoSProfile(
        depth=10, reliability=QoSReliabilityPolicy.RELIABLE))
    wait_until(lambda: subscriptions('/cam/i') == [] and
               subscriptions('/cam/i/compressed') == ['RELIABLE'], 10.0,
               'the compressed input:\n%s' % process.log)
    node.stop()
