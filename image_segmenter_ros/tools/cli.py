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

"""What the bag command-line tools share: exit codes, error sentences and a ROS context."""

from pathlib import Path
import signal
import sys
from typing import Any, Callable, Optional, Sequence

from .bag_io import BagError, BagReader
from ..node.parameters import ConfigurationError

EXIT_ERROR = 1
EXIT_INTERRUPTED = 130


def run(name: str, main: Callable[[], int]) -> int:
    """Run a tool's body; bad input ends it with one sentence on stderr, not a traceback."""
    try:
        return main()
    except (BagError, ConfigurationError, FileNotFoundError) as error:
        print('%s: error: %s' % (name, error), file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print('%s: interrupted' % name, file=sys.stderr)
        return EXIT_INTERRUPTED


def open_bag(name: str, path: Path) -> BagReader:
    """Open a bag to read; a bag cut short is read up to the cut, said in one line."""
    reader = BagReader(path)
    if reader.cut_short:
        print('%s: %s' % (name, reader.cut_short), file=sys.stderr)
    return reader


def output_namespace(topic: str, msgtype: str) -> str:
    """
    Return the namespace a node segmenting ``topic`` would publish in.

    The node is pushed into the camera's namespace, as image_proc nodes are:
    ``/front/image_raw`` (or ``/front/image_raw/compressed``) gives ``/front``, so the
    masks are ``/front/category_mask`` and ``/front/confidence_masks/<label>``.
    """
    base = topic[:-len('/compressed')] if (msgtype.endswith('CompressedImage') and
                                           topic.endswith('/compressed')) else topic
    return base.rsplit('/', 1)[0] or '/'


def join_topic(namespace: str, relative: str) -> str:
    """Resolve a relative topic name in a namespace."""
    return namespace.rstrip('/') + '/' + relative


def ros_context(args: Optional[Sequence[str]] = None) -> Any:
    """
    Start rclpy in a context of its own, stopping cleanly on SIGINT and SIGTERM.

    The signal turns into KeyboardInterrupt in the main thread, so a tool's ``finally``
    blocks (closing a bag, for instance) always run.
    """
    import rclpy
    context = rclpy.Context()
    rclpy.init(args=list(args or []), context=context,
               signal_handler_options=rclpy.signals.SignalHandlerOptions.NO)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    return context
