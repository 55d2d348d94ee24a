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

import re
from typing import Any, List, Optional, Sequence

import numpy as np
from sensor_msgs.msg import Image
import yaml

from .image_conversions import image_fields, render_overlay
from .segmenter import ImageSegmenterResult
from .visualization import class_colour

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


def labels_yaml(model: str, locale: str, labels: Sequence[str],
                display_names: Sequence[str]) -> str:
    """Return the ``labels`` message text: each class's name, colour and confidence topic."""
    classes = [{'index': index, 'name': label, 'display_name': display,
                'color': list(class_colour(index)), 'confidence_topic': topic}
               for index, (label, display, topic) in enumerate(
                   zip(labels, display_names, confidence_topics(labels)))]
    return yaml.safe_dump({'model': model, 'display_names_locale': locale,
                           'classes': classes}, sort_keys=False)


def _image(header: Any, pixels: np.ndarray, encoding: str) -> Image:
    fields = image_fields(pixels, encoding)
    data = fields.pop('data')
    msg = Image(header=header, **fields)
    msg.data = data  # Image(data=...) would copy the buffer twice, the setter at most once
    return msg


def category_message(header: Any, result: ImageSegmenterResult) -> Image:
    """Return the mono8 category mask message, stamped with the input's header."""
    return _image(header, result.category_mask, 'mono8')


def confidence_message(header: Any, result: ImageSegmenterResult, index: int) -> Image:
    """Return the 32FC1 confidence mask message of class ``index``."""
    return _image(header, result.confidence_masks[index], '32FC1')


def overlay_message(header: Any, image: np.ndarray, result: ImageSegmenterResult,
                    alpha: float, input_encoding: Optional[str]) -> Image:
    """Return the overlay message: the decoded input with the class colours blended in."""
    picture, encoding = render_overlay(image, result.category_mask, alpha, input_encoding)
    return _image(header, picture, encoding)
