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
SIGTERM to launch alone. Each way, launch must report the node's exit code 0 within seconds and
no traceback may appear (launch's own ignored KeyboardInterrupt aside, below), and a second
Ctrl-C while the node shuts down must not change that. Jazzy's launch ends at once on SIGTERM,
reporting nothing: then the node must stop by itself with code 0. Launch itself must end too,
but for its own hang after two SIGINTs at once (below). Two launches run at a time, each in a
ROS domain of its own, to keep the forty stops cheap.
"""

from concurrent.futures import ThreadPoolExecutor
import os
import re
import signal
import sys
import textwrap
import time
from typing import List, NamedTuple

from launch_harness import Launch, launch_environment, MISSING
import pytest
from ros_harness import domain_id

# A mark, not a module-level skip: launch_testing's pytest plugin imports every test module
# while collecting, and a skip raised there would end the collection of the whole run.
pytestmark = pytest.mark.skipif(bool(MISSING), reason='ros2 launch cannot run here: %s'
                                % MISSING)

REPEATS = 10
# Launch's own message, not the node's (its lines have no process prefix): given SIGINT twice at
# once, Jazzy's launch at times lets Python's default handler raise in a weakref callback of its
# own, where Python reports and ignores the KeyboardInterrupt (seen once in about 80 stops).
LAUNCH_IGNORED_INTERRUPT = re.compile(
    r'^Exception ignored in: .*\nTraceback \(most recent call last\):\n(?:  .*\n)+'
    r'KeyboardInterrupt: ?$', re.MULTILINE)
# Given two SIGINTs at once, launch's Python default handler raises KeyboardInterrupt at any
# point of its main thread; landing in one of launch's own tasks, it leaves launch waiting for
# that task forever after it has reported the node's exit (ros2/launch#207; about once in 70
# stops with `timeout -s INT` here, never in 200 with `timeout --foreground -s INT`). A hang
# caused by the node would show in most stops, not now and then.
LAUNCH_HANG_AFTER_THE_NODE_S = 10.0
PARALLEL = 2
# The legacy selfie model is the quickest to load; LIVE_STREAM is the default mode.
ARGUMENTS = ['image_segmenter.launch.py', 'image_topic:=/stop_test/image_raw']
# Runs launch as its child and adopts what launch leaves behind (a child subreaper), printing
# each exit code: how the node ended is seen even when launch is gone and cannot report it.
ADOPTER = [sys.executable, '-c', textwrap.dedent("""
    import ctypes, os, subprocess, sys
    ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    print('launch pid %d' % subprocess.Popen(sys.argv[1:]).pid, flush=True)
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        print('pid %d exited with code %d' % (pid, os.waitstatus_to_exitcode(status)),
              flush=True)
""")]
# name: (signal, to the whole group, extra signals during shutdown, wrapper)
WAYS = {
    'ctrl_c_to_the_process_group': (signal.SIGINT, True, 0, ()),
    'sigint_to_launch': (signal.SIGINT, False, 0, ()),
    # SIGALRM is timeout's own alarm: it then sends SIGINT to launch and to its group.
    'timeout_s_int': (signal.SIGALRM, False, 0, ('timeout', '-s', 'INT', '3600')),
    # Jazzy's launch ends at once on SIGTERM, without stopping or reporting its processes:
    # the node must stop by itself, and the adopter reports its exit code instead.
    'sigterm_to_launch': (signal.SIGTERM, False, 0, ADOPTER),
    'second_ctrl_c_during_shutdown': (signal.SIGINT, True, 1, ()),
}
READY = 'Segmenting /stop_test/image_raw'


def _pid(log: str, before: str) -> int:
    return int(log.split(before)[1].split(']')[0].split()[0])


class Stop(NamedTuple):
    """How one stop went."""

    seconds: float  # from the signal until launch (or the adopter) reported the node's exit
    log: str
    launch_hung: bool  # launch still ran LAUNCH_HANG_AFTER_THE_NODE_S after that report


def node_exit_reported(way: str, log: str) -> bool:
    """Tell whether launch (or the adopter) has reported the node's exit, clean or not."""
    if WAYS[way][3] is ADOPTER:
        return 'pid %d exited with code' % _pid(log, 'process started with pid [') in log
    return 'process has finished cleanly' in log or 'process has died' in log


def stop_once(way: str, domain: int, log_dir, index: int) -> Stop:
    """Start a launch and stop it as soon as the node is up."""
    sig, group, again, wrapper = WAYS[way]
    launch = Launch(ARGUMENTS, launch_environment(domain, log_dir),
                    log_dir / ('%s_%d.log' % (way, index)), wrapper)
    try:
        launch.wait_for(READY)
        sent = time.monotonic()
        if wrapper is ADOPTER:
            os.kill(_pid(launch.log, 'launch pid '), sig)
        else:
            launch.signal(sig, group)
        for _ in range(again):
            time.sleep(0.1)
            launch.signal(sig, group)
        launch.wait_for_output(lambda log: node_exit_reported(way, log), "the node's exit", 30.0)
        seconds = time.monotonic() - sent
        try:
            launch.wait(LAUNCH_HANG_AFTER_THE_NODE_S)  # the adopter waits for the node as well
        except AssertionError:
            return Stop(seconds, launch.log, launch_hung=True)
        return Stop(seconds, launch.log, launch_hung=False)
    finally:
        launch.close()


def clean(way: str, log: str) -> bool:
    """Tell whether the node exited with code 0, as launch (or the adopter) reports it."""
    if 'Traceback' in LAUNCH_IGNORED_INTERRUPT.sub('', log) or 'process has died' in log:
        return False
    if WAYS[way][3] is ADOPTER:
        return 'pid %d exited with code 0\n' % _pid(log, 'process started with pid [') in log
    return 'process has finished cleanly' in log


@pytest.mark.parametrize('way', list(WAYS))
def test_the_node_exits_cleanly_every_time(way, tmp_path):
    domains = [domain_id('%s/%d' % (__name__, n)) for n in range(PARALLEL)]
    repeats = REPEATS if not WAYS[way][2] else REPEATS // 2
    with ThreadPoolExecutor(PARALLEL) as pool:
        stops: List[Stop] = list(pool.map(
            lambda index: stop_once(way, domains[index % PARALLEL], tmp_path, index),
            range(repeats)))
    unclean = [stop.log for stop in stops if not clean(way, stop.log)]
    assert not unclean, '%d of %d stops were not clean; the first:\n%s' % (
        len(unclean), len(stops), unclean[0])
    times = sorted(stop.seconds for stop in stops)
    # Until the node has exited: about 0.6 s on an idle machine, 2 s with a load of 9 on two
    # cores. A node still running after 5 s gets SIGTERM from launch (then SIGKILL): a hang.
    assert times[-1] < 5.0, 'stop times (s): %s' % times
    hung = [stop.log for stop in stops if stop.launch_hung]
    assert len(hung) < len(stops) / 2, (
        "ros2 launch still ran %.0f s after reporting the node's exit in %d of %d stops; the "
        'first:\n%s' % (LAUNCH_HANG_AFTER_THE_NODE_S, len(hung), len(stops), hung[0]))
