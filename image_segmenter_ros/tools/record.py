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
record: write topics of the ROS graph to a rosbag2, like ``ros2 bag record``.

``record OUTPUT --topics T ... [--duration SEC] [--count N]`` subscribes to each topic as
soon as a publisher appears, with QoS matching the publishers (reliable and transient local
only when every publisher offers it), and stores the CDR bytes as they arrive, stamped with
the receive time. It stops on SIGINT or SIGTERM, after ``--duration`` seconds, or once
``--count`` messages were stored, and always finishes the bag it was writing.

The bag is written at OUTPUT from the start and synced to disk every half second, so a
crash, ``kill -9`` or power cut loses at most the last half second: the tools read such a
bag (it has no metadata.yaml yet) as cut short, and ``repair_bag`` completes it.
"""

import argparse
from pathlib import Path
import sys
import time
from typing import Dict, Optional, Sequence

from rclpy.qos import QoSDurabilityPolicy, QoSProfile, QoSReliabilityPolicy

from .bag_io import BagWriter, message_class, qos_to_bag, STORAGES
from .cli import ros_context, run
from ..engine import keep_freed_memory

NAME = 'record'


def _matching_qos(infos: Sequence[object]) -> QoSProfile:
    """Reliable / transient local only if every publisher offers it, as ros2 bag record."""
    profiles = [info.qos_profile for info in infos]
    return QoSProfile(
        depth=100,
        reliability=QoSReliabilityPolicy.RELIABLE if all(
            p.reliability == QoSReliabilityPolicy.RELIABLE for p in profiles)
        else QoSReliabilityPolicy.BEST_EFFORT,
        durability=QoSDurabilityPolicy.TRANSIENT_LOCAL if all(
            p.durability == QoSDurabilityPolicy.TRANSIENT_LOCAL for p in profiles)
        else QoSDurabilityPolicy.VOLATILE)


def record(output: Path, topics: Sequence[str], duration: Optional[float] = None,
           count: Optional[int] = None, storage: str = 'mcap', force: bool = False,
           context: object = None) -> Dict[str, int]:
    """Record until stopped; return the number of messages stored per topic."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    node = rclpy.create_node('record', context=context, start_parameter_services=False)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    stored = dict.fromkeys(topics, 0)
    subscriptions = {}
    deadline = None if duration is None else time.monotonic() + duration
    writer = BagWriter(output, storage, force, in_place=True, sync=True)

    def store(topic: str):
        def callback(raw: bytes) -> None:
            writer.write_raw(topic, time.time_ns(), raw)
            stored[topic] += 1
        return callback
    try:
        while (deadline is None or time.monotonic() < deadline) and (
                count is None or sum(stored.values()) < count):
            for topic in topics:
                if topic in subscriptions:
                    continue
                infos = node.get_publishers_info_by_topic(topic)
                if not infos:
                    continue
                qos = _matching_qos(infos)
                writer.add_topic(topic, infos[0].topic_type, [qos_to_bag(qos)])
                subscriptions[topic] = node.create_subscription(
                    message_class(infos[0].topic_type), topic, store(topic), qos, raw=True)
            executor.spin_once(timeout_sec=0.05)
            writer.flush_if_due()  # also when nothing came since the last message
    except KeyboardInterrupt:
        pass  # the normal way to stop recording: the bag is finished below
    finally:
        executor.shutdown()
        node.destroy_node()
        writer.close()  # whatever stopped the recording, what it holds is kept
    return stored


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Parse the command line and record until stopped."""
    parser = argparse.ArgumentParser(prog=NAME, description=__doc__.strip().splitlines()[0])
    parser.add_argument('output', type=Path, help='new rosbag2 directory')
    parser.add_argument('--topics', nargs='+', required=True)
    parser.add_argument('--duration', type=float, help='stop after SEC seconds')
    parser.add_argument('--count', type=int, help='stop after N messages (all topics)')
    parser.add_argument('--storage', choices=sorted(STORAGES), default='mcap')
    parser.add_argument('--force', action='store_true', help='replace an existing OUTPUT')
    args = parser.parse_args(argv)
    keep_freed_memory()

    def body() -> int:
        context = ros_context()
        try:
            stored = record(args.output, args.topics, args.duration, args.count, args.storage,
                            args.force, context)
        finally:
            context.try_shutdown()
        print('%s: wrote %s to %s' % (NAME, ', '.join(
            '%d on %s' % (n, topic) for topic, n in stored.items()), args.output))
        return 0
    return run(NAME, body)


if __name__ == '__main__':
    sys.exit(main())
