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
Read what MediaPipe reads from a segmentation model: tensors' metadata, labels, activation.

TFLite models carry a ``TFLITE_METADATA`` flatbuffer (metadata_schema.fbs) and a zip of
associated files appended to the model. Only the handful of fields the Image Segmenter uses
are read here, straight from the flatbuffer tables, so no generated schema code is needed.
"""

from dataclasses import dataclass, field
import enum
import io
import struct
from typing import Dict, List, Optional, Tuple
import zipfile

from flatbuffers.table import Table

_TFLITE_IDENTIFIER = b'TFL3'
_METADATA_NAME = 'TFLITE_METADATA'
_SEGMENTER_METADATA_NAME = 'SEGMENTER_METADATA'
_TENSOR_AXIS_LABELS = 2
_NORMALIZATION_OPTIONS = 1


class Activation(enum.IntEnum):
    """Activation applied to the model output (image_segmenter_metadata_schema.fbs values)."""

    NONE = 0
    SIGMOID = 1
    SOFTMAX = 2


@dataclass(frozen=True)
class SegmenterMetadata:
    """The metadata MediaPipe's Image Segmenter graph consumes."""

    normalization: Optional[Tuple[Tuple[float, ...], Tuple[float, ...]]]
    activation: Activation
    labels: List[str] = field(default_factory=list)
    display_names: Dict[str, List[str]] = field(default_factory=dict)


class _Tab:
    """Minimal typed access to a flatbuffer table by field slot (0, 1, 2, ...)."""

    def __init__(self, buf: bytes, pos: int):
        self._t = Table(buf, pos)

    @classmethod
    def root(cls, buf: bytes) -> '_Tab':
        return cls(buf, struct.unpack_from('<I', buf, 0)[0])

    def _offset(self, slot: int) -> int:
        return self._t.Offset(4 + 2 * slot)

    def string(self, slot: int) -> Optional[str]:
        o = self._offset(slot)
        return self._t.String(o + self._t.Pos).decode('utf-8') if o else None

    def scalar(self, slot: int, fmt: str, default=0):
        o = self._offset(slot)
        return struct.unpack_from('<' + fmt, self._t.Bytes, o + self._t.Pos)[0] if o else default

    def table(self, slot: int) -> Optional['_Tab']:
        o = self._offset(slot)
        return _Tab(self._t.Bytes, self._t.Indirect(o + self._t.Pos)) if o else None

    def tables(self, slot: int) -> List['_Tab']:
        o = self._offset(slot)
        if not o:
            return []
        start = self._t.Vector(o)
        return [_Tab(self._t.Bytes, self._t.Indirect(start + 4 * i))
                for i in range(self._t.VectorLen(o))]

    def numbers(self, slot: int, fmt: str) -> Tuple:
        o = self._offset(slot)
        if not o:
            return ()
        n = self._t.VectorLen(o)
        return struct.unpack_from('<%d%s' % (n, fmt), self._t.Bytes, self._t.Vector(o))

    def bytes_(self, slot: int) -> bytes:
        o = self._offset(slot)
        if not o:
            return b''
        start = self._t.Vector(o)
        return bytes(self._t.Bytes[start:start + self._t.VectorLen(o)])


def is_tflite_model(model: bytes) -> bool:
    """Tell whether the bytes carry the TFLite flatbuffer file identifier."""
    return len(model) >= 8 and model[4:8] == _TFLITE_IDENTIFIER


def _metadata_buffer(model: bytes) -> Optional[bytes]:
    root = _Tab.root(model)
    buffers = root.tables(4)
    for entry in root.tables(6):
        if entry.string(0) == _METADATA_NAME:
            buffer = buffers[entry.scalar(1, 'I')]
            data = buffer.bytes_(0)
            if not data:  # Large models keep buffers outside the flatbuffer.
                offset, size = buffer.scalar(1, 'Q'), buffer.scalar(2, 'Q')
                data = model[offset:offset + size]
            return data
    return None


def _parse_label_file(text: str, name: str) -> List[str]:
    lines = text.split('\n')
    if lines and lines[-1] == '':
        lines.pop()
    if not lines:
        raise ValueError('The label file %r in the model is empty.' % name)
    return [line.rstrip('\r') for line in lines]


def read_segmenter_metadata(model: bytes) -> SegmenterMetadata:
    """
    Read normalisation, activation, labels and localised display names as MediaPipe does.

    Labels come from the first TENSOR_AXIS_LABELS file of the last output tensor, whatever its
    locale; display names are indexed by each such file's locale.
    """
    metadata = _metadata_buffer(model)
    if metadata is None:
        return SegmenterMetadata(normalization=None, activation=Activation.NONE)
    subgraphs = _Tab.root(metadata).tables(3)
    if not subgraphs:
        return SegmenterMetadata(normalization=None, activation=Activation.NONE)
    subgraph = subgraphs[0]

    normalization = None
    inputs = subgraph.tables(2)
    for unit in (inputs[0].tables(4) if inputs else []):
        if unit.scalar(0, 'B') == _NORMALIZATION_OPTIONS:
            options = unit.table(1)
            normalization = (options.numbers(0, 'f'), options.numbers(1, 'f'))
            break

    activation = Activation.NONE
    for custom in subgraph.tables(9):
        if custom.string(0) == _SEGMENTER_METADATA_NAME:
            data = custom.bytes_(1)
            if data:
                activation = Activation(_Tab.root(data).scalar(0, 'b'))
            break

    labels: List[str] = []
    display_names: Dict[str, List[str]] = {}
    outputs = subgraph.tables(3)
    label_files = [f for f in (outputs[-1].tables(6) if outputs else [])
                   if f.scalar(2, 'b') == _TENSOR_AXIS_LABELS]
    if label_files:
        with zipfile.ZipFile(io.BytesIO(model)) as archive:
            for index, label_file in enumerate(label_files):
                name = label_file.string(0)
                names = _parse_label_file(archive.read(name).decode('utf-8'), name)
                if index == 0:
                    labels = names
                locale = label_file.string(3)
                if locale and locale not in display_names:
                    display_names[locale] = names
    return SegmenterMetadata(normalization, activation, labels, display_names)
