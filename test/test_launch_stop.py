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
Stopping ``ros2 launch`` the ways users do, ten times each: the node always exits cleanly.

A terminal's Ctrl-C sends SIGINT to the whole process group, so the node gets it twice (from
the terminal and from launch); ``timeout -s INT`` does the same; a supervisor sends SIGINT or
SIGTERM to launch alone. Each way, launch must report the node's exit code 0 and no traceback
may appear, and a second Ctrl-C while the node shuts down must not change that. Jazzy's launch
ends at once on SIGTERM, reporting nothing: then the node must stop by itself. Two launches
run at a time, each in a ROS domain of its own, to keep the forty stops cheap.
"""

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
import signal
import statistics
import time
from typing import List, Tuple

from launch_harness import Launch, launch_environment, MISSING
import pytest
from ros_harness import domain_id, wait_until

if MISSING:
    pytest.skip('ros2 launch cannot run here: ' + MISSING, allow_module_level=True)

REPEATS = 10
PARALLEL = 2
# The legacy selfie model is the quickest to load; LIVE_STREAM is the default mode.
ARGUMENTS = ['image_segmenter.launch.py', 'image_topic:=/stop_test/image_raw']
# name: (signal, to the whole group, extra signals during shutdown, wrapper)
WAYS = {
    'ctrl_c_to_the_process_group': (signal.SIGINT, True, 0, ()),
    'sigint_to_launch': (signal.SIGINT, False, 0, ()),
    # SIGALRM is timeout's own alarm: it then sends SIGINT to launch and to its group.
    'timeout_s_int': (signal.SIGALRM, False, 0, ('timeout', '-s', 'INT', '3600')),
    # Jazzy's launch ends at once on SIGTERM, without stopping or reporting its processes:
    # the node stops by itself when launch is gone.
    'sigterm_to_launch': (signal.SIGTERM, False, 0, ()),
    'second_ctrl_c_during_shutdown': (signal.SIGINT, True, 1, ()),
}
READY = 'Segmenting /stop_test/image_raw'


def stop_once(way: str, domain: int, log_dir, index: int) -> Tuple[float, str]:
    """Start a launch, stop it as soon as the node is up; return the stop time and the log."""
    sig, group, again, wrapper = WAYS[way]
    launch = Launch(ARGUMENTS, launch_environment(domain, log_dir),
                    log_dir / ('%s_%d.log' % (way, index)), wrapper)
    try:
        launch.wait_for(READY)
        sent = time.monotonic()
        launch.signal(sig, group)
        for _ in range(again):
            time.sleep(0.1)
            launch.signal(sig, group)
        launch.wait(30.0)
        node = Path('/proc/%s' % launch.log.split('process started with pid [')[1].split(']')[0])
        wait_until(lambda: not node.exists() or ') Z ' in (node / 'stat').read_text(), 30.0,
                   'the node to exit')
        return time.monotonic() - sent, launch.log
    finally:
        launch.close()


@pytest.mark.parametrize('way', list(WAYS))
def test_the_node_exits_cleanly_every_time(way, tmp_path):
    domains = [domain_id('%s/%d' % (__name__, n)) for n in range(PARALLEL)]
    repeats = REPEATS if not WAYS[way][2] else REPEATS // 2
    with ThreadPoolExecutor(PARALLEL) as pool:
        stops: List[Tuple[float, str]] = list(pool.map(
            lambda index: stop_once(way, domains[index % PARALLEL], tmp_path, index),
            range(repeats)))
    reported = way != 'sigterm_to_launch'
    unclean = [log for _, log in stops
               if ('process has finished cleanly' not in log) == reported or 'Traceback' in log
               or 'process has died' in log]
    assert not unclean, '%d of %d stops were not clean; the first:\n%s' % (
        len(unclean), len(stops), unclean[0])
    times = sorted(elapsed for elapsed, _ in stops)
    # Clean exits above also mean launch never had to escalate to SIGTERM or SIGKILL; the
    # times run until the node has exited.
    assert statistics.median(times) < 2.0, 'stop times (s): %s' % times
