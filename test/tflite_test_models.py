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
Build small, real segmentation ``.tflite`` models with MediaPipe metadata.

The test suite needs models that exercise every post-processing path of the
MediaPipe Tasks ImageSegmenter (softmax, sigmoid, no activation, one class,
labels and locales, missing normalisation, 4-channel input).  The official
models do not cover them all and cannot be downloaded everywhere, so this
module writes them from scratch at test time: no TensorFlow, no binaries in
the repository.

The graph is ``[1, H, W, C] -> CONV_2D 3x3 (SAME, RELU) -> CONV_2D 1x1 ->
[1, H, W, num_classes]`` with float32 weights drawn from a seeded generator, so
the output depends on local pixel content and differs across a natural image.

The metadata is laid out exactly as MediaPipe's own ``MetadataWriter`` and
``MetadataPopulator`` lay it out (the populator cannot be imported from
mediapipe 1.2.2, which lacks its compiled helper): a ``TFLITE_METADATA`` entry
points at a buffer holding the ``M001`` metadata flatbuffer, the segmenter
activation is a ``SEGMENTER_METADATA`` custom metadata holding a ``V001``
``ImageSegmenterOptions`` flatbuffer, and label files are stored in a zip
archive appended to the model bytes.
"""

import dataclasses
import io
import math
from pathlib import Path
from typing import Dict, List, Optional, Tuple
import zipfile

import flatbuffers
from mediapipe.tasks.metadata import image_segmenter_metadata_schema_py_generated as _seg_fb
from mediapipe.tasks.metadata import metadata_schema_py_generated as _md_fb
from mediapipe.tasks.metadata import schema_py_generated as _tfl_fb
import numpy as np

# Identifiers and names MediaPipe's readers look for (values from
# mediapipe/tasks/python/metadata/metadata.py and
# metadata_writers/image_segmenter.py).
TFLITE_FILE_IDENTIFIER = b'TFL3'
METADATA_FILE_IDENTIFIER = b'M001'
METADATA_FIELD_NAME = 'TFLITE_METADATA'
SEGMENTER_METADATA_NAME = 'SEGMENTER_METADATA'
SEGMENTER_METADATA_IDENTIFIER = b'V001'

ACTIVATIONS = {
    'NONE': _seg_fb.Activation.NONE,
    'SIGMOID': _seg_fb.Activation.SIGMOID,
    'SOFTMAX': _seg_fb.Activation.SOFTMAX,
}

HIDDEN_CHANNELS = 8

# Schema version of the TFLite model flatbuffer.
_TFLITE_SCHEMA_VERSION = 3
# BuiltinOperator codes above this value are only stored in builtin_code.
_PLACEHOLDER_FOR_GREATER_OP_CODES = 127
# Minimum metadata parser versions, as computed by MediaPipe's
# GetMinimumMetadataParserVersion for the fields used here.
_DEFAULT_PARSER_VERSION = '1.0.0'
_CUSTOM_METADATA_PARSER_VERSION = '1.5.0'

_MODEL_NAME = 'ImageSegmenter'
_MODEL_DESCRIPTION = (
    'Semantic image segmentation predicts whether each pixel of an image is '
    'associated with a certain class.')
_LABEL_FILE_DESCRIPTION = 'Labels for categories that the model can recognize.'


@dataclasses.dataclass(frozen=True, kw_only=True)
class TestModelSpec:
    """
    Description of one generated test model (all fields keyword-only).

    input_size: (height, width) of the input and output tensors.
    input_channels: 3, or 4 like MediaPipe's hair model (MediaPipe feeds such
    models through its legacy RGBA path and zeroes alpha when label 1 is hair).
    activation: 'NONE', 'SIGMOID' or 'SOFTMAX' writes SEGMENTER_METADATA with
    that value; None leaves the custom metadata out (MediaPipe then warns and
    uses NONE).
    labels: names written to the first TENSOR_AXIS_LABELS file (what MediaPipe
    reports as ``labels``), with locale ``labels_locale``; None writes none.
    localized_labels: locale -> display names, each written to its own
    TENSOR_AXIS_LABELS file tagged with that locale, after the labels file.
    normalization: (mean, std) written as NormalizationOptions of the input;
    None leaves them out, which MediaPipe refuses for a float32 input.
    quantized: a uint8 input (DEQUANTIZE to float, pixel values as they are, so no
    normalization) and a uint8 output (QUANTIZE of the logits, scale 1/16 around 128).
    seed: seed of the numpy generator that draws the weights.
    """

    __test__ = False  # Not a pytest test class despite its name.

    name: str
    input_size: Tuple[int, int] = (64, 64)  # (height, width)
    input_channels: int = 3
    num_classes: int
    activation: Optional[str] = 'SOFTMAX'
    labels: Optional[List[str]] = None
    labels_locale: Optional[str] = None
    localized_labels: Dict[str, List[str]] = dataclasses.field(default_factory=dict)
    normalization: Optional[Tuple[float, float]] = (127.5, 127.5)
    quantized: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        """Reject specs that would silently produce a broken model."""
        if self.num_classes < 1:
            raise ValueError('num_classes must be at least 1')
        if self.input_channels not in (3, 4):
            raise ValueError('input_channels must be 3 or 4')
        if self.activation is not None and self.activation not in ACTIVATIONS:
            raise ValueError(f'unknown activation {self.activation!r}')
        if self.labels is not None and len(self.labels) != self.num_classes:
            raise ValueError('labels must have num_classes entries')
        for locale, names in self.localized_labels.items():
            if len(names) != self.num_classes:
                raise ValueError(f'{locale} labels must have num_classes entries')
            if locale == self.labels_locale:
                raise ValueError(f'locale {locale!r} used twice')
        if self.normalization is not None and self.normalization[1] == 0:
            raise ValueError('normalization std must not be zero')
        if self.quantized and self.normalization is not None:
            raise ValueError('a uint8 input takes pixel values as they are: no normalization')

    @property
    def input_shape(self) -> Tuple[int, int, int, int]:
        """Shape of the model's input tensor, NHWC."""
        return (1, self.input_size[0], self.input_size[1], self.input_channels)

    @property
    def output_shape(self) -> Tuple[int, int, int, int]:
        """Shape of the model's output tensor, NHWC."""
        return (1, self.input_size[0], self.input_size[1], self.num_classes)

    def label_files(self) -> List[Tuple[str, Optional[str], List[str]]]:
        """
        Return (file name, locale, names) in the order they are recorded.

        File names follow MediaPipe's writer: labels.txt, or labels_<locale>.txt.
        """
        files = []
        if self.labels is not None:
            files.append((_label_file_name(self.labels_locale), self.labels_locale,
                          list(self.labels)))
        for locale, names in self.localized_labels.items():
            files.append((_label_file_name(locale), locale, list(names)))
        return files


def _label_file_name(locale: Optional[str]) -> str:
    return f'labels_{locale}.txt' if locale else 'labels.txt'


_SEGMENT_LABELS = ['background', 'hair', 'body-skin', 'face-skin', 'clothes', 'others']
_SEGMENT_LABELS_FR = ['arrière-plan', 'cheveux', 'peau du corps', 'peau du visage',
                      'vêtements', 'autres']

TEST_MODELS: Dict[str, TestModelSpec] = {
    spec.name: spec for spec in (
        TestModelSpec(
            name='multiclass_softmax', num_classes=6, input_size=(64, 64),
            activation='SOFTMAX', labels=_SEGMENT_LABELS, labels_locale='en',
            localized_labels={'fr': _SEGMENT_LABELS_FR},
            normalization=(127.5, 127.5), seed=1),
        TestModelSpec(
            name='multiclass_sigmoid', num_classes=3, input_size=(48, 80),
            activation='SIGMOID', labels=['background', 'person', 'object'],
            normalization=(127.5, 127.5), seed=2),
        TestModelSpec(
            name='multiclass_none', num_classes=4, input_size=(40, 56),
            activation='NONE', labels=['sky', 'ground', 'person', 'other'],
            normalization=(0.0, 255.0), seed=3),
        TestModelSpec(
            name='binary_sigmoid', num_classes=1, input_size=(64, 48),
            activation='SIGMOID', labels=['person'],
            normalization=(127.5, 127.5), seed=4),
        TestModelSpec(
            name='no_activation_metadata', num_classes=2, input_size=(32, 48),
            activation=None, labels=['background', 'foreground'],
            normalization=(127.5, 127.5), seed=5),
        TestModelSpec(
            name='no_normalization', num_classes=2, input_size=(32, 32),
            activation='SOFTMAX', labels=['background', 'foreground'],
            normalization=None, seed=6),
        TestModelSpec(
            name='hair_like', num_classes=2, input_size=(32, 32), input_channels=4,
            activation='SOFTMAX', labels=['background', 'hair'],
            normalization=(127.5, 127.5), seed=7),
        TestModelSpec(
            name='quantized_softmax', num_classes=3, input_size=(40, 40),
            activation='SOFTMAX', labels=['background', 'person', 'object'],
            normalization=None, quantized=True, seed=9),
        TestModelSpec(
            name='no_labels', num_classes=2, input_size=(48, 48),
            activation='SOFTMAX', labels=None,
            normalization=(127.5, 127.5), seed=8),
    )
}


class _AlignedBufferT(_tfl_fb.BufferT):
    """
    BufferT whose data vector is 16-byte aligned, as TFLite converters emit.

    The generated object API aligns ``[ubyte]`` data to 1 byte only; aligned
    float weights keep every reader (mmap, XNNPACK) on its fast, safe path.
    """

    # Name fixed by the flatbuffers object API, which calls Pack().
    def Pack(self, builder: flatbuffers.Builder) -> int:  # noqa: N802
        data_offset = None
        if self.data is not None:
            data = bytes(self.data)
            builder.StartVector(1, len(data), 16)
            builder.head = builder.head - len(data)
            builder.Bytes[builder.head:builder.head + len(data)] = data
            data_offset = builder.EndVector()
        _tfl_fb.BufferStart(builder)
        if data_offset is not None:
            _tfl_fb.BufferAddData(builder, data_offset)
        return _tfl_fb.BufferEnd(builder)


def _input_range(spec: TestModelSpec) -> Tuple[float, float]:
    """Range of the normalised input tensor for pixel values 0..255."""
    mean, std = spec.normalization if spec.normalization else (0.0, 1.0)
    return (0.0 - mean) / std, (255.0 - mean) / std


def _calibration_patches(spec: TestModelSpec, rng: np.random.Generator) -> np.ndarray:
    """
    Return normalised 3x3 input patches standing in for ordinary photos.

    Each patch is one random colour plus mild noise, as most 3x3 patches of a
    photo are nearly flat. Channels beyond RGB are 0, which is what MediaPipe
    feeds to the alpha channel of a hair-style 4-channel model.
    """
    count = 4096
    colours = rng.uniform(0.0, 255.0, (count, 1, 1, 3))
    patches = np.clip(colours + rng.normal(0.0, 8.0, (count, 3, 3, 3)), 0.0, 255.0)
    extra = np.zeros((count, 3, 3, spec.input_channels - 3))
    patches = np.concatenate([patches, extra], axis=-1)
    mean, std = spec.normalization if spec.normalization else (0.0, 1.0)
    return (patches - mean) / std


def make_weights(spec: TestModelSpec) -> Dict[str, np.ndarray]:
    """
    Return the deterministic float32 weights of ``spec``'s graph.

    The 3x3 layer is scaled to the normalised input range and centred on mid
    grey, so hidden units switch on and off across an ordinary photo. The 1x1
    layer spreads the logits over a few units, and its bias is chosen so that
    every class has the same median logit over a spread of colours: argmax
    and thresholded masks then vary from region to region of a real image
    instead of one class winning everywhere.
    """
    rng = np.random.default_rng(spec.seed)
    lo, hi = _input_range(spec)
    centre = (lo + hi) / 2.0
    half_range = (hi - lo) / 2.0
    fan_in = 9 * spec.input_channels
    w1 = rng.standard_normal((HIDDEN_CHANNELS, 3, 3, spec.input_channels))
    w1 *= 2.0 / (half_range * math.sqrt(fan_in))
    b1 = -w1.sum(axis=(1, 2, 3)) * centre + rng.normal(0.0, 0.3, HIDDEN_CHANNELS)
    w2 = rng.standard_normal((spec.num_classes, 1, 1, HIDDEN_CHANNELS))

    patches = _calibration_patches(spec, rng)
    hidden = np.maximum(np.einsum('nhwc,khwc->nk', patches, w1) + b1, 0.0)
    logits = hidden @ w2[:, 0, 0, :].T
    b2 = -np.median(logits, axis=0) + rng.normal(0.0, 0.1, spec.num_classes)
    return {
        'conv1/weights': w1.astype(np.float32),
        'conv1/bias': b1.astype(np.float32),
        'conv2/weights': w2.astype(np.float32),
        'conv2/bias': b2.astype(np.float32),
    }


def _operator_code(builtin: int) -> _tfl_fb.OperatorCodeT:
    code = _tfl_fb.OperatorCodeT()
    code.builtinCode = builtin
    code.deprecatedBuiltinCode = min(builtin, _PLACEHOLDER_FOR_GREATER_OP_CODES)
    code.version = 1
    return code


# The uint8 output of quantized models: logits from -8 to 7.94 in steps of 1/16.
OUTPUT_SCALE, OUTPUT_ZERO_POINT = 1.0 / 16.0, 128


def _tensor(name: str, shape: Tuple[int, ...], buffer: int,
            quantization: Optional[Tuple[float, int]] = None) -> _tfl_fb.TensorT:
    """Return a float32 tensor, or a uint8 one with (scale, zero point)."""
    tensor = _tfl_fb.TensorT()
    tensor.name = name
    tensor.shape = list(shape)
    tensor.type = _tfl_fb.TensorType.FLOAT32
    tensor.buffer = buffer
    if quantization is not None:
        tensor.type = _tfl_fb.TensorType.UINT8
        tensor.quantization = _tfl_fb.QuantizationParametersT()
        tensor.quantization.scale = [quantization[0]]
        tensor.quantization.zeroPoint = [quantization[1]]
    return tensor


def _op(opcode: int, inputs: List[int], output: int) -> _tfl_fb.OperatorT:
    op = _tfl_fb.OperatorT()
    op.opcodeIndex = opcode
    op.inputs = inputs
    op.outputs = [output]
    return op


def _conv(inputs: List[int], output: int, activation: int) -> _tfl_fb.OperatorT:
    options = _tfl_fb.Conv2DOptionsT()
    options.padding = _tfl_fb.Padding.SAME
    options.strideH = 1
    options.strideW = 1
    options.fusedActivationFunction = activation
    op = _op(0, inputs, output)
    op.builtinOptionsType = _tfl_fb.BuiltinOptions.Conv2DOptions
    op.builtinOptions = options
    return op


def _build_graph(spec: TestModelSpec) -> _tfl_fb.ModelT:
    """Build the bare TFLite model (no metadata) as a flatbuffers object."""
    weights = make_weights(spec)
    height, width = spec.input_size
    hidden_shape = (1, height, width, HIDDEN_CHANNELS)

    buffers = [_AlignedBufferT()]  # Buffer 0: the empty sentinel.
    quantized = spec.quantized
    tensors = [
        _tensor('input_image', spec.input_shape, 0, (1.0, 0) if quantized else None),
        _tensor('conv1/relu', hidden_shape, 0),
        _tensor('segmentation_logits', spec.output_shape, 0,
                (OUTPUT_SCALE, OUTPUT_ZERO_POINT) if quantized else None),
    ]
    if quantized:  # the float tensors between the uint8 ends
        tensors += [_tensor('input_float', spec.input_shape, 0),
                    _tensor('logits_float', spec.output_shape, 0)]
    for name, value in weights.items():
        buffer = _AlignedBufferT()
        buffer.data = value.tobytes()
        buffers.append(buffer)
        tensors.append(_tensor(name, value.shape, len(buffers) - 1))
    index = {tensor.name: i for i, tensor in enumerate(tensors)}

    subgraph = _tfl_fb.SubGraphT()
    subgraph.name = 'main'
    subgraph.tensors = tensors
    subgraph.inputs = [index['input_image']]
    subgraph.outputs = [index['segmentation_logits']]
    image = index['input_float' if quantized else 'input_image']
    logits = index['logits_float' if quantized else 'segmentation_logits']
    subgraph.operators = [
        _conv([image, index['conv1/weights'], index['conv1/bias']],
              index['conv1/relu'], _tfl_fb.ActivationFunctionType.RELU),
        _conv([index['conv1/relu'], index['conv2/weights'], index['conv2/bias']],
              logits, _tfl_fb.ActivationFunctionType.NONE),
    ]
    if quantized:
        subgraph.operators = ([_op(1, [index['input_image']], image)] + subgraph.operators +
                              [_op(2, [logits], index['segmentation_logits'])])

    model = _tfl_fb.ModelT()
    model.version = _TFLITE_SCHEMA_VERSION
    model.description = 'image_segmenter_ros test model'
    model.operatorCodes = [_operator_code(code) for code in (
        _tfl_fb.BuiltinOperator.CONV_2D, _tfl_fb.BuiltinOperator.DEQUANTIZE,
        _tfl_fb.BuiltinOperator.QUANTIZE)]
    model.subgraphs = [subgraph]
    model.buffers = buffers
    return model


def _input_metadata(spec: TestModelSpec) -> _md_fb.TensorMetadataT:
    """Input image metadata as MediaPipe's InputImageTensorMd writes it."""
    tensor_md = _md_fb.TensorMetadataT()
    tensor_md.name = 'image'
    tensor_md.description = 'Input image to be processed.'
    stats = _md_fb.StatsT()
    if spec.normalization is not None:
        lo, hi = _input_range(spec)
        stats.min = [lo]
        stats.max = [hi]
    tensor_md.stats = stats
    content = _md_fb.ContentT()
    content.contentPropertiesType = _md_fb.ContentProperties.ImageProperties
    content.contentProperties = _md_fb.ImagePropertiesT()
    content.contentProperties.colorSpace = _md_fb.ColorSpaceType.RGB
    tensor_md.content = content
    if spec.normalization is not None:
        options = _md_fb.NormalizationOptionsT()
        options.mean = [float(spec.normalization[0])]
        options.std = [float(spec.normalization[1])]
        unit = _md_fb.ProcessUnitT()
        unit.optionsType = _md_fb.ProcessUnitOptions.NormalizationOptions
        unit.options = options
        tensor_md.processUnits = [unit]
    return tensor_md


def _output_metadata(spec: TestModelSpec) -> _md_fb.TensorMetadataT:
    """Mask metadata as MediaPipe's SegmentationMaskMd writes it."""
    tensor_md = _md_fb.TensorMetadataT()
    tensor_md.name = 'segmentation_masks'
    tensor_md.description = 'Masks over the target objects with high accuracy.'
    tensor_md.stats = _md_fb.StatsT()
    content = _md_fb.ContentT()
    content.contentPropertiesType = _md_fb.ContentProperties.ImageProperties
    content.contentProperties = _md_fb.ImagePropertiesT()
    content.contentProperties.colorSpace = _md_fb.ColorSpaceType.GRAYSCALE
    content.range = _md_fb.ValueRangeT()
    content.range.min = 1
    content.range.max = 2
    tensor_md.content = content
    files = []
    for file_name, locale, _ in spec.label_files():
        associated = _md_fb.AssociatedFileT()
        associated.name = file_name
        associated.description = _LABEL_FILE_DESCRIPTION
        associated.type = _md_fb.AssociatedFileType.TENSOR_AXIS_LABELS
        associated.locale = locale
        files.append(associated)
    if files:
        tensor_md.associatedFiles = files
    return tensor_md


def segmenter_options_buffer(activation: str) -> bytes:
    """Serialise ImageSegmenterOptions the way MediaPipe's writer does."""
    options = _seg_fb.ImageSegmenterOptionsT()
    options.activation = ACTIVATIONS[activation]
    builder = flatbuffers.Builder(0)
    builder.Finish(options.Pack(builder), SEGMENTER_METADATA_IDENTIFIER)
    return bytes(builder.Output())


def metadata_buffer(spec: TestModelSpec) -> bytes:
    """Serialise the model metadata flatbuffer (identifier M001)."""
    subgraph_md = _md_fb.SubGraphMetadataT()
    subgraph_md.inputTensorMetadata = [_input_metadata(spec)]
    subgraph_md.outputTensorMetadata = [_output_metadata(spec)]
    if spec.activation is not None:
        custom = _md_fb.CustomMetadataT()
        custom.name = SEGMENTER_METADATA_NAME
        custom.data = segmenter_options_buffer(spec.activation)
        subgraph_md.customMetadata = [custom]

    model_md = _md_fb.ModelMetadataT()
    model_md.name = _MODEL_NAME
    model_md.description = _MODEL_DESCRIPTION
    model_md.subgraphMetadata = [subgraph_md]
    # What MetadataPopulator computes: custom metadata needs parser 1.5.0,
    # everything else used here is part of the 1.0.0 schema.
    model_md.minParserVersion = (
        _CUSTOM_METADATA_PARSER_VERSION if subgraph_md.customMetadata
        else _DEFAULT_PARSER_VERSION)

    builder = flatbuffers.Builder(0)
    builder.Finish(model_md.Pack(builder), METADATA_FILE_IDENTIFIER)
    return bytes(builder.Output())


def build_model(spec: TestModelSpec) -> bytes:
    """
    Return the complete ``.tflite`` file for ``spec``: graph, metadata, labels.

    Follows MetadataPopulator: the metadata flatbuffer goes into a new buffer
    referenced by a ``TFLITE_METADATA`` model metadata entry, the model is
    serialised with identifier ``TFL3``, then the label files are appended as
    an uncompressed zip archive.
    """
    model = _build_graph(spec)
    md_buffer = _AlignedBufferT()
    md_buffer.data = metadata_buffer(spec)
    model.buffers.append(md_buffer)
    entry = _tfl_fb.MetadataT()
    entry.name = METADATA_FIELD_NAME
    entry.buffer = len(model.buffers) - 1
    model.metadata = [entry]

    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), TFLITE_FILE_IDENTIFIER)
    model_bytes = bytes(builder.Output())

    label_files = spec.label_files()
    if not label_files:
        return model_bytes
    stream = io.BytesIO(model_bytes)
    with zipfile.ZipFile(stream, 'a') as archive:
        for file_name, _, names in label_files:
            # Same text as MediaPipe's writer: one name per line, no final newline. A fixed
            # date, not the clock's, so that the same spec always gives the same bytes.
            archive.writestr(zipfile.ZipInfo(file_name, date_time=(1980, 1, 1, 0, 0, 0)),
                             '\n'.join(names))
    return stream.getvalue()


def write_test_models(directory: Path) -> Dict[str, Path]:
    """Write every model of TEST_MODELS as ``<name>.tflite`` into ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, spec in TEST_MODELS.items():
        path = directory / f'{name}.tflite'
        path.write_bytes(build_model(spec))
        paths[name] = path
    return paths
