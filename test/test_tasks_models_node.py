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
The node and the bag tools with the official Tasks models, over real DDS on loopback.

deeplab_v3 (21 classes, labels with spaces) and hair_segmenter (4-channel input) through the
node, segment_bag and render, and every file in config/ starting a node that produces masks.
"""

from pathlib import Path
from typing import Dict, List

import cv2
from image_segmenter_ros import ImageSegmenter, ImageSegmenterOptions
from image_segmenter_ros.node import input_images as ic
from image_segmenter_ros.node.overlay import PALETTE, render_overlay
from image_segmenter_ros.tools import render
from image_segmenter_ros.tools.make_sample_bag import make_sample_bag
from image_segmenter_ros.tools.render import main as render_main
from image_segmenter_ros.tools.segment_bag import main as segment_bag_main
import numpy as np
import pytest
from ros_harness import LATCHED, PACKAGE_ROOT, wait_until
from sensor_msgs.msg import Image
from std_msgs.msg import String
from test_bag_tools import read_bag, VIDEO
from test_image_segmenter_node import image_msg, NodeUnderTest, pixels, round_trip, start
import yaml

DEEPLAB_CONFIG = PACKAGE_ROOT / 'config' / 'deeplab_v3.yaml'
PERSON, DINING_TABLE, POTTED_PLANT = 15, 11, 16
# What the deeplab node's probe subscribes to: only these are computed and published.
DEEPLAB_OUTPUTS = ['category_mask', 'overlay', 'confidence_masks/person',
                   'confidence_masks/dining_table']
BAG_FRAMES = 16  # Megamind.avi's first frame is black; from frame 15 on, person and table
RELIABLE_INPUT = 'qos_overrides./cam/image_raw.subscription.reliability:=reliable'


@pytest.fixture(scope='module')
def deeplab_engine(tasks_model):
    options = ImageSegmenterOptions(model_path=str(tasks_model('deeplab_v3')),
                                    output_category_mask=True)
    with ImageSegmenter.create_from_options(options) as segmenter:
        yield segmenter


@pytest.fixture(scope='module')
def deeplab_node(env, probe, tmp_path_factory, deeplab_engine):
    process = start(env, tmp_path_factory, 'deeplab_node', [
        '--params-file', str(DEEPLAB_CONFIG), '-r', 'image:=/cam/image_raw', '-r', '__ns:=/d',
        '-p', RELIABLE_INPUT])
    node = NodeUnderTest(probe, process, '/d', '/cam/image_raw')
    probe.subscribe(String, '/d/labels', LATCHED)
    for name in DEEPLAB_OUTPUTS:
        probe.subscribe(Image, node.topic(name))
    node.wait_connected(DEEPLAB_OUTPUTS)
    yield node
    node.stop()


def test_deeplab_labels_topics_and_colours(deeplab_node, deeplab_engine):
    labels = yaml.safe_load(deeplab_node.probe.wait_for('/d/labels')[0].data)
    classes = labels['classes']
    assert labels['model'] == 'deeplab_v3' and len(classes) == 21
    assert [c['name'] for c in classes] == deeplab_engine.labels
    assert classes[DINING_TABLE]['confidence_topic'] == 'confidence_masks/dining_table'
    assert classes[POTTED_PLANT]['confidence_topic'] == 'confidence_masks/potted_plant'
    assert len({c['confidence_topic'] for c in classes}) == 21
    for entry in classes:  # every class topic is advertised under its label-made name
        assert deeplab_node.probe.node.count_publishers('/d/' + entry['confidence_topic']) == 1
    # 21 colours, one per class, distinguishable: far apart in CIELAB (beyond a just-noticeable
    # difference many times over), and the same in the labels message as on the overlay.
    assert len(PALETTE) == 21
    assert [tuple(c['color']) for c in classes] == [tuple(int(v) for v in c) for c in PALETTE]
    lab = cv2.cvtColor(PALETTE[np.newaxis, 1:].astype(np.float32) / 255,
                       cv2.COLOR_RGB2Lab)[0]
    distances = np.linalg.norm(lab[:, np.newaxis] - lab[np.newaxis], axis=2)
    assert distances[~np.eye(len(lab), dtype=bool)].min() > 20.0


def test_deeplab_node_computes_only_the_subscribed_classes(deeplab_node, deeplab_engine,
                                                           megamind_frames):
    values = deeplab_node.diagnostics()
    assert sorted(values['outputs with subscribers'].split(', ')) == sorted(DEEPLAB_OUTPUTS)
    frame = megamind_frames[0]
    msg = image_msg(frame, 'bgr8', 'deeplab_frame', 100.0)
    outputs = round_trip(deeplab_node, msg, DEEPLAB_OUTPUTS, timeout=20.0)
    expected = deeplab_engine.segment(frame)
    category = pixels(outputs['category_mask'], np.uint8)
    np.testing.assert_array_equal(category, expected.category_mask)
    assert {PERSON, DINING_TABLE} <= set(np.unique(category))
    for name, index in (('person', PERSON), ('dining_table', DINING_TABLE)):
        np.testing.assert_array_equal(pixels(outputs['confidence_masks/' + name], np.float32),
                                      expected.confidence_masks[index])
    picture, _ = render_overlay(frame, expected.category_mask, 0.5, 'bgr8')
    np.testing.assert_array_equal(pixels(outputs['overlay'], np.uint8), picture)


@pytest.fixture(scope='module')
def deeplab_bags(tmp_path_factory, tasks_model) -> Dict[str, Path]:
    tasks_model('deeplab_v3')
    folder = tmp_path_factory.mktemp('deeplab_bags')
    make_sample_bag(VIDEO, folder / 'megamind', frames=BAG_FRAMES, rate=20.0,
                    start_time=1000.0, topic='/camera/image_raw')
    assert segment_bag_main([str(folder / 'megamind'), str(folder / 'segmented'),
                             '--params-file', str(DEEPLAB_CONFIG)]) == 0
    return {'input': folder / 'megamind', 'segmented': folder / 'segmented'}


def test_segment_bag_with_deeplab_gives_the_node_outputs(deeplab_bags, deeplab_node):
    stored = read_bag(deeplab_bags['segmented'])
    frames = stored['/camera/image_raw']
    assert len(frames) == BAG_FRAMES
    assert sum(1 for topic in stored if topic.startswith('/camera/confidence_masks/')) == 21
    bag_labels = yaml.safe_load(stored['/camera/labels'][0].data)
    node_labels = yaml.safe_load(deeplab_node.probe.wait_for('/d/labels')[0].data)
    assert bag_labels['classes'] == node_labels['classes']
    for index in (7, BAG_FRAMES - 1):  # through the node, as its camera would send them
        frame = frames[index]
        frame.header.frame_id = 'bag_frame_%d' % index
        outputs = round_trip(deeplab_node, frame, DEEPLAB_OUTPUTS, timeout=20.0)
        for name in ('category_mask', 'confidence_masks/person',
                     'confidence_masks/dining_table'):
            stored_mask = stored['/camera/' + name][index]
            assert stored_mask.data == outputs[name].data, name
    assert (np.frombuffer(stored['/camera/category_mask'][-1].data, np.uint8)
            == DINING_TABLE).any()


@pytest.fixture
def sheet_arguments(monkeypatch) -> List[Dict]:
    """Record what render puts on the contact sheet, the sheet itself still being drawn."""
    calls = []
    original = render.contact_sheet

    def recording(tiles, legend, columns=4, tile_width=320, title=''):
        sheet = original(tiles, legend, columns, tile_width, title)
        calls.append({'tiles': tiles, 'legend': list(legend), 'title': title, 'sheet': sheet})
        return sheet
    monkeypatch.setattr(render, 'contact_sheet', recording)
    return calls


def test_render_with_21_classes_names_the_model_and_shows_what_is_present(
        deeplab_bags, sheet_arguments, tmp_path):
    picture = tmp_path / 'deeplab.png'
    assert render_main([str(deeplab_bags['segmented']), str(picture), '--tiles', '4']) == 0
    drawn = sheet_arguments[-1]
    assert drawn['title'].startswith('deeplab_v3 on segmented (720x528)')
    assert drawn['title'].endswith('| confidence of "person"')
    # The legend lists the classes of the pictured masks (frames spread over the bag, ends
    # left out), background left out.
    masks = read_bag(deeplab_bags['segmented'], ['/camera/category_mask'])
    pictured = np.linspace(0, BAG_FRAMES - 1, 4 + 2, dtype=int)[1:-1]
    present = set(np.unique(np.concatenate([np.frombuffer(
        masks['/camera/category_mask'][i].data, np.uint8) for i in pictured]))) - {0}
    assert {PERSON, DINING_TABLE} <= present
    assert [index for index, _ in drawn['legend']] == sorted(present)
    assert dict(drawn['legend'])[DINING_TABLE] == 'dining table'
    # Overlay and confidence of the person for each frame; the panels show the person.
    assert len(drawn['tiles']) == 8
    assert max(panel.std() for panel in drawn['tiles'][1::2]) > 10
    assert cv2.imread(str(picture)).shape == drawn['sheet'].shape

    assert render_main([str(deeplab_bags['segmented']), str(picture), '--tiles', '4',
                        '--confidence-class', 'dining table']) == 0
    assert sheet_arguments[-1]['title'].endswith('| confidence of "dining table"')
    assert render_main([str(deeplab_bags['segmented']), str(picture), '--tiles', '4',
                        '--confidence-class', '9']) == 0
    assert sheet_arguments[-1]['title'].endswith('| confidence of "chair"')


def test_render_refuses_a_confidence_class_the_model_lacks(deeplab_bags, tmp_path, capsys):
    assert render_main([str(deeplab_bags['segmented']), str(tmp_path / 'x.png'),
                        '--confidence-class', 'unicorn']) == 1
    error = capsys.readouterr().err.strip()
    assert error.startswith("render: error: --confidence-class 'unicorn' names no class of "
                            'the model (background, aeroplane, ')
    assert error.endswith('tv).') and '\n' not in error


def test_contact_sheet_fits_a_long_title_and_wraps_21_classes():
    tiles = [np.zeros((264, 360, 3), np.uint8)] * 4
    legend = [(index, 'class with a long name %d' % index) for index in range(1, 21)]
    title = '/a/very/long/path/to/models/' * 12 + 'deeplab_v3.tflite on a bag'
    sheet = render.contact_sheet(tiles, legend, columns=4, title=title)
    assert sheet.shape[1] == 4 * 320
    placed, rows = render._legend_layout(legend, sheet.shape[1])
    assert rows >= 3 and len(placed) == 20
    for x, row, index, text in placed:
        width = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)[0][0]
        assert 0 < x and x + 24 + width < sheet.shape[1]
    text, scale = render._fitted(title, sheet.shape[1] - 20, 0.7, 2)
    width = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 2)[0][0]
    assert width <= sheet.shape[1] - 20
    assert text.endswith('...')
    title_band = sheet[:36]
    assert (title_band[:, -8:] == 255).all()  # nothing drawn off the right edge
    legend_band = sheet[-(14 + render.LEGEND_ROW * rows):]
    assert (legend_band[:, -8:] == 255).all() and (legend_band < 128).any()
    assert render._model_name('/opt/models/deeplab_v3.tflite') == 'deeplab_v3'
    assert render._model_name('deeplab_v3') == 'deeplab_v3'


# hair_segmenter: a 4-channel model fed by 3- and 4-channel cameras.

@pytest.fixture(scope='module')
def hair_node(env, probe, tmp_path_factory, tasks_model):
    tasks_model('hair_segmenter')
    process = start(env, tmp_path_factory, 'hair_node', [
        '--params-file', 'config/hair_segmenter.yaml', '-r', 'image:=/hair/image_raw',
        '-r', '__ns:=/h', '-p', 'qos_overrides./hair/image_raw.subscription.reliability:='
        'reliable'])
    node = NodeUnderTest(probe, process, '/h', '/hair/image_raw')
    for name in ('category_mask', 'confidence_masks/hair'):
        probe.subscribe(Image, node.topic(name))
    node.wait_connected(['category_mask', 'confidence_masks/hair'])
    yield node
    node.stop()


def test_hair_node_segments_bgr8_and_rgba8_frames(hair_node, tasks_model, megamind_frames):
    frame = cv2.resize(megamind_frames[1], (360, 264), interpolation=cv2.INTER_AREA)
    options = ImageSegmenterOptions(model_path=str(tasks_model('hair_segmenter')),
                                    output_category_mask=True)
    with ImageSegmenter.create_from_options(options) as engine:
        expected = engine.segment(frame)
    outputs = ['category_mask', 'confidence_masks/hair']
    results = []
    for encoding in ('bgr8', 'rgba8'):  # rgba8 with alpha 200: the model's alpha is zeroed
        msg = image_msg(frame, encoding, 'hair_' + encoding, 200.0 + len(results))
        decoded = ic.image_to_array(msg)
        assert decoded.shape[2] == (4 if encoding == 'rgba8' else 3)
        received = round_trip(hair_node, msg, outputs, timeout=20.0)
        results.append(received)
        category = pixels(received['category_mask'], np.uint8)
        np.testing.assert_array_equal(category, expected.category_mask)
        np.testing.assert_array_equal(pixels(received['confidence_masks/hair'], np.float32),
                                      expected.confidence_masks[1])
        assert 0.02 < (category == 1).mean() < 0.6  # the hair, not nothing or everything


# Every configuration file starts a node that produces masks.

CONFIGS = sorted((PACKAGE_ROOT / 'config').glob('*.yaml'))


@pytest.mark.parametrize('config', CONFIGS, ids=lambda path: path.stem)
def test_each_config_starts_the_node_and_produces_masks(config, env, probe, tmp_path_factory,
                                                        tasks_model, megamind_frames):
    model = yaml.safe_load(config.read_text())['/**']['ros__parameters']['model']
    model_path = tasks_model(model)  # skips, naming the file, where it cannot be had
    namespace = '/cfg_' + config.stem
    process = start(env, tmp_path_factory, 'config_' + config.stem, [
        '--params-file', str(config), '-r', 'image:=/cam/config_image', '-r',
        '__ns:=' + namespace, '-p', 'qos_overrides./cam/config_image.subscription.reliability:='
        'reliable'])
    node = NodeUnderTest(probe, process, namespace, '/cam/config_image')
    probe.subscribe(Image, node.topic('category_mask'))
    node.wait_connected(['category_mask'])
    frame = cv2.resize(megamind_frames[2], (360, 264), interpolation=cv2.INTER_AREA)
    msg = image_msg(frame, 'bgr8', 'config_' + config.stem, 300.0)
    category = pixels(round_trip(node, msg, ['category_mask'], timeout=20.0)['category_mask'],
                      np.uint8)
    with ImageSegmenter.create_from_options(ImageSegmenterOptions(
            model_path=str(model_path), output_category_mask=True,
            output_confidence_masks=False)) as engine:
        np.testing.assert_array_equal(category, engine.segment(frame).category_mask)
    assert len(np.unique(category)) >= 2
    node.stop()
    wait_until(lambda: process.process.poll() is not None, 10.0, 'the node to exit')
