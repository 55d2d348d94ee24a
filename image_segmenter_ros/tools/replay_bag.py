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
replay_bag: publish a bag's image topics with their recorded timing, like ``ros2 bag play``.

``replay_bag INPUT [--rate R] [--loop] [--start SEC] [--clock] [--topics T ...]`` publishes
the stored CDR bytes unchanged (headers included), spaced as they were received, scaled by
``--rate``. With ``--loop`` the bag starts over after its last message, so header stamps
(and /clock) jump back at each wrap, as on a robot replaying a loop. Publishers are
reliable (they serve best-effort subscribers too). The first message waits until every
topic has a subscriber (up to ``--wait-for-subscribers`` seconds, 0: publish at once), so
nothing is sent into the void while DDS discovery links the node.
"""

import argparse
from pathlib import Path
import sys
import time
from typing import Optional, Sequence

from rosgraph_msgs.msg import Clock
from tqdm import tqdm

from .bag_io import BagError, BagReader, IMAGE_TYPES, message_class, qos_from_bag
from .cli import open_bag, ros_context, run

NAME = 'replay_bag'
CLOCK_HZ = 40.0
WAIT_SEC = 30.0  # for subscribers, by default: frames sent before discovery are lost


def replay(reader: BagReader, topics: Sequence[str], rate: float = 1.0, loop: bool = False,
           start: float = 0.0, clock: bool = False, wait_for_subscribers: float = 0.0,
           context: object = None, subscribers: int = 1) -> int:
    """Publish the messages of ``topics``; return how many were published."""
    import rclpy
    node = rclpy.create_node('replay_bag', context=context, start_parameter_services=False)
    publishers = {topic: node.create_publisher(message_class(reader.topics[topic]), topic,
                                               qos_from_bag(reader.qos(topic), depth=100))
                  for topic in topics}
    clock_publisher = node.create_publisher(Clock, '/clock', 10) if clock else None
    if wait_for_subscribers:
        deadline = time.monotonic() + wait_for_subscribers
        while not all(p.get_subscription_count() >= subscribers
                      for p in publishers.values()):
            if time.monotonic() > deadline:
                raise BagError('Fewer than %d subscribers on %s after %.0f s '
                               '(--wait-for-subscribers 0 publishes without waiting).' % (
                                   subscribers, ', '.join(
                                       t for t, p in publishers.items()
                                       if p.get_subscription_count() < subscribers),
                                   wait_for_subscribers))
            time.sleep(0.05)
    first = None
    published = 0
    bar = tqdm(unit='msg', desc=NAME, dynamic_ncols=True, file=sys.stderr)
    try:
        while True:
            wall_start = None  # set by the first message played: opening the bag is not waited
            for message in reader.messages(topics):
                if first is None:
                    first = message.timestamp_ns
                offset = (message.timestamp_ns - first) / 1e9 - start
                if offset < 0:
                    continue
                if wall_start is None:
                    wall_start = time.monotonic() - offset / rate
                _wait_until(wall_start + offset / rate, clock_publisher, first, start, rate,
                            wall_start)
                publishers[message.topic].publish(message.raw)
                published += 1
                bar.update()
            if wall_start is None:  # a pass with nothing to play: so would every next one
                raise BagError('Bag %s has no messages on %s%s.' % (
                    reader.path, ', '.join(topics), ' after --start %g s' % start if start
                    else ''))
            if not loop:
                break
    finally:
        bar.close()
        for publisher in publishers.values():  # reliable delivery of the last messages
            publisher.wait_for_all_acked(rclpy.duration.Duration(seconds=2.0))
        node.destroy_node()
    return published


def _wait_until(deadline: float, clock_publisher: Optional[object], first_ns: int,
                start: float, rate: float, wall_start: float) -> None:
    """
    Sleep until ``deadline`` (monotonic), publishing bag time on /clock meanwhile.

    The clock stops at the next message's time when publishing runs late, so it never runs
    ahead of a message still to come (nor past the end of the bag).
    """
    while True:
        now = time.monotonic()
        if clock_publisher is not None:
            bag_ns = first_ns + int(((min(now, deadline) - wall_start) * rate + start) * 1e9)
            msg = Clock()
            msg.clock.sec, msg.clock.nanosec = divmod(bag_ns, 10**9)
            clock_publisher.publish(msg)
        if now >= deadline:
            return
        time.sleep(min(deadline - now, 1.0 / CLOCK_HZ))


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Parse the command line and replay the bag until it ends (or forever with --loop)."""
    parser = argparse.ArgumentParser(prog=NAME, description=__doc__.strip().splitlines()[0])
    parser.add_argument('input', type=Path, help='rosbag2 directory, .mcap or .db3 file')
    parser.add_argument('--rate', type=float, default=1.0, help='speed factor (default 1.0)')
    parser.add_argument('--loop', action='store_true', help='start over at the end, forever')
    parser.add_argument('--start', type=float, default=0.0,
                        help='skip the first SEC seconds of the bag')
    parser.add_argument('--clock', action='store_true',
                        help='publish the bag time on /clock (%g Hz), for use_sim_time' % CLOCK_HZ)
    parser.add_argument('--topics', nargs='+', help='topics to publish (default: the image '
                        'topics)')
    parser.add_argument('--wait-for-subscribers', type=float, default=WAIT_SEC, metavar='SEC',
                        help='wait up to SEC seconds for subscribers on every topic before '
                        'the first message (default %g; 0: do not wait)' % WAIT_SEC)
    parser.add_argument('--subscribers', type=int, default=1, metavar='N',
                        help='with --wait-for-subscribers: how many to wait for (default 1)')
    args = parser.parse_args(argv)
    if args.rate <= 0:
        parser.error('--rate must be positive')

    def body() -> int:
        with open_bag(NAME, args.input) as reader:
            topics = args.topics or reader.image_topics()
            reader.check_topics(topics)
            if not topics:
                raise BagError('Bag %s has no image topics (%s); name topics with --topics.'
                               % (args.input, ' or '.join(IMAGE_TYPES)))
            context = ros_context()
            try:
                count = replay(reader, topics, args.rate, args.loop, args.start, args.clock,
                               args.wait_for_subscribers, context, args.subscribers)
            finally:
                context.try_shutdown()
        print('%s: published %d messages' % (NAME, count))
        return 0
    return run(NAME, body)


if __name__ == '__main__':
    sys.exit(main())
