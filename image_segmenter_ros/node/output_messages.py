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
import yaml

from .image_cdr import encode_image
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


def image_fields(image: np.ndarray, encoding: str) -> Dict[str, Any]:
    """
    Return the sensor_msgs/Image fields (minus header) for a mono8, rgb8/bgr8/... or 32FC1 array.

    The data is an array('B'), which the message setter takes without a per-byte check.
    """
    image = np.ascontiguousarray(image)
    height, width = image.shape[:2]
    data = array.array('B')
    data.frombytes(image.reshape(-1).view(np.uint8))
    return {'height': height, 'width': width, 'encoding': encoding,
            'is_bigendian': image.dtype.byteorder == '>' or (
                image.dtype.byteorder == '=' and sys.byteorder == 'big'),
            'step': width * image.dtype.itemsize * (image.shape[2] if image.ndim == 3 else 1),
            'data': data}


def serialized_image(header: Any, pixels: np.ndarray, encoding: str) -> bytes:
    """
    Return the CDR bytes of an Image of ``pixels``, which a publisher sends as they are.

    An Image message costs rclpy a conversion to C and a serialization first; for the 21 VGA
    masks of deeplab_v3 the bytes take about a tenth less CPU (docs/performance_notes.md).
    """
    return b''.join(encode_image(header, pixels, encoding))


def category_message(header: Any, result: ImageSegmenterResult) -> bytes:
    """Return the mono8 category mask message (serialized), with the input's header."""
    return serialized_image(header, result.category_mask, 'mono8')


def confidence_message(header: Any, result: ImageSegmenterResult, index: int) -> bytes:
    """Return the 32FC1 confidence mask message (serialized) of class ``index``."""
    return serialized_image(header, result.confidence_masks[index], '32FC1')


def overlay_message(header: Any, image: np.ndarray, result: ImageSegmenterResult,
                    alpha: float, input_encoding: Optional[str]) -> bytes:
    """Return the overlay message (serialized): the input with the class colours blended in."""
    picture, encoding = render_overlay(image, result.category_mask, alpha, input_encoding)
    return serialized_image(header, picture, encoding)
