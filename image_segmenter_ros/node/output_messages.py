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
What the segmenter publishes: topic names and messages, shared by the node and segment_bag.

Both build their outputs here, so a bag segmented offline holds the same topics, headers,
encodings and bytes as a recording of the live node.
"""

import array
import re
import sys
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
from sensor_msgs.msg import Image
import yaml

from .overlay import class_colour, render_overlay
from ..engine import ImageSegmenterResult

CATEGORY_TOPIC = 'category_mask'
CONFIDENCE_PREFIX = 'confidence_masks/'
OVERLAY_TOPIC = 'overlay'
LABELS_TOPIC = 'labels'


def topic_token(label: str, index: int, taken: Sequence[str]) -> str:
    """Turn a class label into a valid, unique ROS topic name token (hair -> hair)."""
    token = re.sub(r'[^a-z0-9_]+', '_', label.lower()).strip('_')
    token = re.sub(r'_+', '_', token)
    if not token:
        token = 'class_%d' % index
    elif token[0].isdigit():
        token = 'class_' + token
    return token if token not in taken else '%s_%d' % (token, index)


def confidence_topics(labels: Sequence[str]) -> List[str]:
    """Return the relative confidence mask topic of each class, in class order."""
    tokens: List[str] = []
    for index, label in enumerate(labels):
        tokens.append(topic_token(label, index, tokens))
    return [CONFIDENCE_PREFIX + token for token in tokens]


def labels_yaml(model: str, locale: str, labels: Sequence[str], display_names: Sequence[str],
                with_confidence_masks: bool = True) -> str:
    """
    Return the ``labels`` message text: each class's name, colour and confidence topic.

    The confidence topic is null when confidence masks are not published.
    """
    topics = (confidence_topics(labels) if with_confidence_masks
              else [None] * len(labels))
    classes = [{'index': index, 'name': label, 'display_name': display,
                'color': list(class_colour(index)), 'confidence_topic': topic}
               for index, (label, display, topic) in enumerate(
                   zip(labels, display_names, topics))]
    return yaml.safe_dump({'model': model, 'display_names_locale': locale,
                           'classes': classes}, sort_keys=False)


# Jazzy's setter copies an array('B') unless the message checks its fields (then it keeps it);
# Humble's always keeps it and has no such option.
def image_layout(image: np.ndarray, encoding: str) -> Dict[str, Any]:
    """Return the sensor_msgs/Image size fields (no header, no data) for an array."""
    height, width = image.shape[:2]
    return {'height': height, 'width': width, 'encoding': encoding,
            'is_bigendian': image.dtype.byteorder == '>' or (
                image.dtype.byteorder == '=' and sys.byteorder == 'big'),
            'step': width * image.dtype.itemsize * (image.shape[2] if image.ndim == 3 else 1)}


def image_fields(image: np.ndarray, encoding: str) -> Dict[str, Any]:
    """
    Return the sensor_msgs/Image fields (minus header) for a mono8, rgb8/bgr8/... or 32FC1 array.

    The data is an array('B'), which the message setter takes without a per-byte check.
    """
    image = np.ascontiguousarray(image)
    data = array.array('B')
    data.frombytes(image.reshape(-1).view(np.uint8))
    fields = image_layout(image, encoding)
    fields['data'] = data
    return fields


_KEEPS_ARRAYS = {'check_fields': True} if '_check_fields' in Image.__slots__ else {}


class MessageBuffer:
    """
    One Image message reused for every frame of an output topic.

    For a publisher only: publish() has copied the message when it returns, so the next frame
    can refill the same data buffer instead of allocating (and faulting in) a full-size one.
    Messages that are kept, like segment_bag's, must not come from here.
    """

    def __init__(self):
        self.msg = Image(**_KEEPS_ARRAYS)

    def fill(self, header: Any, pixels: np.ndarray, encoding: str) -> Image:
        """Return the message holding ``pixels``, with ``header`` and the fields of a new one."""
        msg = self.msg
        for name, value in image_layout(pixels, encoding).items():
            setattr(msg, name, value)
        msg.header = header
        if len(msg.data) != pixels.nbytes:
            msg.data = array.array('B', bytes(pixels.nbytes))
        # Refill the buffer the message holds, whichever object the setter kept.
        target = np.frombuffer(msg.data, pixels.dtype).reshape(pixels.shape)
        np.copyto(target, pixels, casting='no')
        return msg


def _image(header: Any, pixels: np.ndarray, encoding: str,
           reuse: Optional[MessageBuffer] = None) -> Image:
    if reuse is not None:
        return reuse.fill(header, pixels, encoding)
    fields = image_fields(pixels, encoding)
    data = fields.pop('data')
    msg = Image(header=header, **fields, **_KEEPS_ARRAYS)
    msg.data = data  # Image(data=...) would copy the buffer twice; this setter keeps it
    return msg


def category_message(header: Any, result: ImageSegmenterResult,
                     reuse: Optional[MessageBuffer] = None) -> Image:
    """Return the mono8 category mask message, stamped with the input's header."""
    return _image(header, result.category_mask, 'mono8', reuse)


def confidence_message(header: Any, result: ImageSegmenterResult, index: int,
                       reuse: Optional[MessageBuffer] = None) -> Image:
    """Return the 32FC1 confidence mask message of class ``index``."""
    return _image(header, result.confidence_masks[index], '32FC1', reuse)


def overlay_message(header: Any, image: np.ndarray, result: ImageSegmenterResult,
                    alpha: float, input_encoding: Optional[str],
                    reuse: Optional[MessageBuffer] = None) -> Image:
    """Return the overlay message: the decoded input with the class colours blended in."""
    picture, encoding = render_overlay(image, result.category_mask, alpha, input_encoding)
    return _image(header, picture, encoding, reuse)
