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
The generated test models must be real models that LiteRT and MediaPipe accept.

Every other test relies on these models, so this checks them against both
runtimes: LiteRT must run the graph and compute what the weights say, and
MediaPipe 1.2.2 must read the metadata (normalisation, activation, labels)
the same way it reads the official task models.
"""

import io
import zipfile

from ai_edge_litert.interpreter import Interpreter
import cv2
from matplotlib import cbook
import mediapipe as mp
from mediapipe.tasks.metadata import image_segmenter_metadata_schema_py_generated as seg_fb
from mediapipe.tasks.metadata import metadata_schema_py_generated as md_fb
from mediapipe.tasks.metadata import schema_py_generated as tfl_fb
from mediapipe.tasks.python.core.base_options import BaseOptions
from mediapipe.tasks.python.vision import image_segmenter
import numpy as np
import pytest

import tflite_test_models as ttm

MODEL_NAMES = sorted(ttm.TEST_MODELS)
REQUIRED_MODELS = {
    'multiclass_softmax', 'multiclass_sigmoid', 'multiclass_none', 'binary_sigmoid',
    'no_activation_metadata', 'no_normalization', 'hair_like', 'no_labels', 'quantized_softmax',
}


@pytest.fixture(scope='module')
def model_paths(tmp_path_factory):
    """Write all models once per module; building them takes milliseconds."""
    return ttm.write_test_models(tmp_path_factory.mktemp('models'))


@pytest.fixture(scope='module')
def photo_rgb():
    """Return a real photograph (shipped with matplotlib) as RGB uint8."""
    path = cbook.get_sample_data('grace_hopper.jpg', asfileobj=False)
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert bgr is not None
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _reference_forward(spec, tensor):
    """Compute the graph in numpy (SAME 3x3 conv + ReLU, then 1x1 conv)."""
    weights = ttm.make_weights(spec)
    w1, b1 = weights['conv1/weights'], weights['conv1/bias']
    w2, b2 = weights['conv2/weights'], weights['conv2/bias']
    image = tensor[0].astype(np.float64)
    height, width, _ = image.shape
    padded = np.pad(image, ((1, 1), (1, 1), (0, 0)))
    hidden = np.zeros((height, width, w1.shape[0]))
    for dy in range(3):
        for dx in range(3):
            hidden += padded[dy:dy + height, dx:dx + width, :] @ w1[:, dy, dx, :].T
    hidden = np.maximum(hidden + b1, 0.0)
    return (hidden @ w2[:, 0, 0, :].T + b2)[np.newaxis]


def _segmenter_options(path):
    return image_segmenter.ImageSegmenterOptions(
        base_options=BaseOptions(model_asset_path=str(path)),
        output_confidence_masks=True,
        output_category_mask=True)


def _mp_image(spec, rgb):
    if spec.input_channels == 4:
        rgba = np.ascontiguousarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2RGBA))
        return mp.Image(image_format=mp.ImageFormat.SRGBA, data=rgba)
    return mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb))


def test_required_models_are_defined():
    assert REQUIRED_MODELS <= set(ttm.TEST_MODELS)
    for name, spec in ttm.TEST_MODELS.items():
        assert spec.name == name


def test_build_is_deterministic():
    for spec in ttm.TEST_MODELS.values():
        assert ttm.build_model(spec) == ttm.build_model(spec)


@pytest.mark.parametrize('name', MODEL_NAMES)
def test_file_layout_matches_metadata_populator(name):
    spec = ttm.TEST_MODELS[name]
    data = ttm.build_model(spec)
    assert data[4:8] == b'TFL3'
    model = tfl_fb.Model.GetRootAs(data, 0)
    assert model.Version() == 3
    assert model.Buffers(0).DataLength() == 0
    assert model.SubgraphsLength() == 1
    entries = {model.Metadata(i).Name().decode(): model.Metadata(i).Buffer()
               for i in range(model.MetadataLength())}
    assert set(entries) == {'TFLITE_METADATA'}
    md_bytes = model.Buffers(entries['TFLITE_METADATA']).DataAsNumpy().tobytes()
    assert md_bytes[4:8] == b'M001'
    metadata = md_fb.ModelMetadataT.InitFromObj(md_fb.ModelMetadata.GetRootAs(md_bytes, 0))
    subgraph = metadata.subgraphMetadata[0]
    custom = subgraph.customMetadata or []
    if spec.activation is None:
        assert custom == []
        assert metadata.minParserVersion == b'1.0.0'
    else:
        assert [c.name for c in custom] == [b'SEGMENTER_METADATA']
        assert metadata.minParserVersion == b'1.5.0'
        options_bytes = bytes(custom[0].data)
        assert options_bytes[4:8] == b'V001'
        options = seg_fb.ImageSegmenterOptions.GetRootAs(options_bytes, 0)
        assert options.Activation() == ttm.ACTIVATIONS[spec.activation]
    units = subgraph.inputTensorMetadata[0].processUnits or []
    if spec.normalization is None:
        assert units == []
    else:
        assert list(units[0].options.mean) == [spec.normalization[0]]
        assert list(units[0].options.std) == [spec.normalization[1]]

    files = subgraph.outputTensorMetadata[0].associatedFiles or []
    expected = spec.label_files()
    assert [(f.name.decode(), f.locale.decode() if f.locale else None) for f in files] == [
        (file_name, locale) for file_name, locale, _ in expected]
    if expected:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            assert archive.namelist() == [file_name for file_name, _, _ in expected]
            for file_name, _, names in expected:
                assert archive.read(file_name).decode('utf-8').split('\n') == names
    else:
        assert not zipfile.is_zipfile(io.BytesIO(data))


@pytest.mark.parametrize('name', MODEL_NAMES)
def test_litert_runs_model(name, model_paths):
    spec = ttm.TEST_MODELS[name]
    interpreter = Interpreter(model_path=str(model_paths[name]))
    interpreter.allocate_tensors()
    input_detail = interpreter.get_input_details()[0]
    output_detail = interpreter.get_output_details()[0]
    assert tuple(input_detail['shape']) == spec.input_shape
    assert input_detail['dtype'] == (np.uint8 if spec.quantized else np.float32)
    rng = np.random.default_rng(42)
    pixels = rng.integers(0, 256, spec.input_shape).astype(np.float32)
    mean, std = spec.normalization or (0.0, 1.0)
    tensor = ((pixels - mean) / std).astype(np.float32)
    interpreter.set_tensor(input_detail['index'],
                           pixels.astype(np.uint8) if spec.quantized else tensor)
    interpreter.invoke()
    output = interpreter.get_tensor(output_detail['index'])
    assert output.shape == spec.output_shape
    expected = _reference_forward(spec, tensor)
    if spec.quantized:  # uint8 steps of 1/16 around 128, saturated
        assert output.dtype == np.uint8
        assert output_detail['quantization'] == (ttm.OUTPUT_SCALE, ttm.OUTPUT_ZERO_POINT)
        output = (output.astype(np.float32) - ttm.OUTPUT_ZERO_POINT) * ttm.OUTPUT_SCALE
        expected = np.clip(expected, -128 * ttm.OUTPUT_SCALE, 127 * ttm.OUTPUT_SCALE)
        assert len(np.unique(output)) > 20  # the logits span many steps, not a few
        np.testing.assert_allclose(output, expected, atol=ttm.OUTPUT_SCALE / 2 + 1e-4)
    else:
        assert output.dtype == np.float32
        np.testing.assert_allclose(output, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize('name', [n for n in MODEL_NAMES if n != 'no_normalization'])
def test_mediapipe_accepts_model(name, model_paths, photo_rgb):
    spec = ttm.TEST_MODELS[name]
    height, width, _ = photo_rgb.shape
    with image_segmenter.ImageSegmenter.create_from_options(
            _segmenter_options(model_paths[name])) as segmenter:
        assert segmenter.labels == (spec.labels or [])
        result = segmenter.segment(_mp_image(spec, photo_rgb))
    assert len(result.confidence_masks) == spec.num_classes
    for mask in result.confidence_masks:
        view = mask.numpy_view()
        assert view.shape[:2] == (height, width)
        assert np.isfinite(view).all()
        if spec.activation in ('SIGMOID', 'SOFTMAX'):
            assert view.min() >= 0.0 and view.max() <= 1.0
    category = result.category_mask.numpy_view()
    assert category.shape[:2] == (height, width)
    values = set(np.unique(category).tolist())
    if spec.num_classes == 1:
        # One channel: MediaPipe writes 0 where p > 0.5 and 255 elsewhere.
        assert values <= {0, 255}
    else:
        assert values <= set(range(spec.num_classes))
        assert len(values) >= 2, f'{name}: one category over the whole photo'


def test_mediapipe_refuses_float_model_without_normalization(model_paths):
    with pytest.raises((ValueError, RuntimeError, OSError), match='NormalizationOptions'):
        with image_segmenter.ImageSegmenter.create_from_options(
                _segmenter_options(model_paths['no_normalization'])):
            pass
