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
The node's executable: a stop by SIGINT or SIGTERM is quiet at any moment, even a second one.

This module imports only the standard library, so its signal handler is in place before
NumPy, OpenCV, LiteRT and rclpy load (Ctrl-C during those imports would print a traceback).
rclpy's own handler, installed by ``rclpy.init``, shuts the context down and then calls ours.
"""

import ctypes
import os
import signal
import sys
from typing import Any, List, Optional

# Set by the launch files: stop (as by SIGTERM) when the launching process dies. Jazzy's
# ros2 launch ends at once on SIGTERM and leaves its processes running.
STOP_WITH_LAUNCH = 'IMAGE_SEGMENTER_ROS_STOP_WITH_LAUNCH'
_PR_SET_PDEATHSIG = 1


class StopSignals:
    """
    The first SIGINT or SIGTERM stops the node; later ones do nothing.

    Until rclpy is initialised the first raises KeyboardInterrupt in the main thread (the
    imports); after, rclpy's handler has shut the context down when ours runs, which ends the
    start-up or the spin, so ours only records the stop: a KeyboardInterrupt raised there could
    land in a ctypes callback (numba compiling), which prints it and carries on.

    ``ros2 launch`` forwards Ctrl-C to a node that the terminal has already sent it to, so two
    signals often arrive a few milliseconds apart: the second must not interrupt the shutdown
    that the first began.
    """

    def __init__(self) -> None:
        self.stopping = False
        self.interrupts = True

    def __call__(self, signum: int, frame: Any) -> None:
        if not self.stopping:
            self.stopping = True
            if self.interrupts:
                raise KeyboardInterrupt

    def install(self) -> None:
        """
        Handle SIGINT and SIGTERM, unless ignored since start (a shell's background job).

        Started by the launch files, also get SIGTERM when the launching process dies.
        """
        for signum in (signal.SIGINT, signal.SIGTERM):
            if signal.getsignal(signum) != signal.SIG_IGN:
                signal.signal(signum, self)
        if os.environ.get(STOP_WITH_LAUNCH) == '1' and sys.platform.startswith('linux'):
            ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)

    def ignore(self) -> None:
        """
        Ignore SIGINT and SIGTERM from now on.

        At exit Python gives a signal it handles back to the default action, which would end
        the process by a late second signal while DDS is being torn down (exit code -2).
        """
        self.stopping = True
        for signum in (signal.SIGINT, signal.SIGTERM):
            if signal.getsignal(signum) is self:
                signal.signal(signum, signal.SIG_IGN)


def main(args: Optional[List[str]] = None) -> int:
    """Run the node until SIGINT/SIGTERM (exit code 0); on a bad setup, one sentence and 1."""
    return _main(args, lifecycle=False)


def lifecycle_main(args: Optional[List[str]] = None) -> int:
    """Run the lifecycle node, unconfigured until a manager or ``ros2 lifecycle`` moves it."""
    return _main(args, lifecycle=True)


def _main(args: Optional[List[str]], lifecycle: bool) -> int:
    stop = StopSignals()
    try:
        stop.install()
        try:
            from .image_segmenter_node import ImageSegmenterNode, run
            node_class = ImageSegmenterNode
            if lifecycle:
                from .lifecycle_node import ImageSegmenterLifecycleNode
                node_class = ImageSegmenterLifecycleNode
        except Exception:
            # The KeyboardInterrupt as the interrupted code passed it on: an extension's
            # initialisation raises ImportError, a class being created RuntimeError.
            if stop.stopping:
                return 0
            raise
        if stop.stopping:  # a library's optional import caught the KeyboardInterrupt
            return 0
        return run(stop, args, node_class)
    except KeyboardInterrupt:  # during the imports, or a signal racing the shutdown
        return 0
    finally:
        stop.ignore()
