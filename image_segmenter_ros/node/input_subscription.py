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
The node's input subscription, whose reliability follows what the publishers offer.

VIDEO and IMAGE modes segment every frame. A best-effort subscription to a reliable publisher
connects, but large frames that Fast DDS loses in fragments are then never repaired (a third
of VGA frames at 30 Hz with the default transports); a reliable subscription to a best-effort
publisher does not connect at all. So, like rosbag2's recorder, the node subscribes once it
sees a publisher, reliable when every publisher offers it and best effort otherwise, and
subscribes again when the publishers change. A ``qos_overrides`` reliability always wins.
"""

import copy
from typing import Any, Callable, Optional

from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.qos import QoSProfile, QoSReliabilityPolicy

# How often the graph is read for the publishers' offers (a local cache: microseconds).
POLL_SEC = 0.1


def offered_reliability(node: Node, topic: str) -> Optional[QoSReliabilityPolicy]:
    """Return the reliability every publisher of ``topic`` accepts; None without publishers."""
    offers = [info.qos_profile.reliability for info in node.get_publishers_info_by_topic(topic)]
    if not offers:
        return None
    if all(offer == QoSReliabilityPolicy.RELIABLE for offer in offers):
        return QoSReliabilityPolicy.RELIABLE
    return QoSReliabilityPolicy.BEST_EFFORT


class InputSubscription:
    """
    A subscription made by ``create(qos)``, with the offered reliability when ``follow``.

    Without ``follow`` it is created at once with ``qos`` (LIVE_STREAM: best effort, the newest
    frame wins; or a reliability set by ``qos_overrides``).
    """

    def __init__(self, node: Node, topic: str, qos: QoSProfile,
                 create: Callable[[QoSProfile], Any], follow: bool):
        self._node, self._topic, self._qos, self._create = node, topic, qos, create
        self.subscription: Optional[Any] = None
        self._timer = None
        if not follow:
            self.subscription = create(copy.copy(qos))
            return
        self._follow_publishers()
        self._timer = node.create_timer(POLL_SEC, self._follow_publishers,
                                        clock=Clock(clock_type=ClockType.STEADY_TIME))

    @property
    def reliability(self) -> str:
        """Our side's reliability, for /diagnostics."""
        if self.subscription is None:
            return 'none yet (no publisher)'
        name = self.subscription.qos_profile.reliability.name.lower()
        return name + (' (as the publishers offer)' if self._timer is not None else '')

    def _follow_publishers(self) -> None:
        wanted = offered_reliability(self._node, self._topic)
        current = self.subscription and self.subscription.qos_profile.reliability
        if wanted is None or wanted == current:
            return
        qos = copy.copy(self._qos)
        qos.reliability = wanted
        if self.subscription is not None:
            self._node.destroy_subscription(self.subscription)
        self.subscription = self._create(qos)
        self._node.get_logger().info(
            'Subscribed to %s %s, as %s.' % (
                self._topic, wanted.name.lower().replace('_', ' '),
                'its publishers offer' if wanted == QoSReliabilityPolicy.RELIABLE
                else 'a publisher offers only that'))

    def publisher_count(self) -> int:
        return self._node.count_publishers(self._topic)

    def destroy(self) -> None:
        if self._timer is not None:
            self._node.destroy_timer(self._timer)
            self._timer = None
        if self.subscription is not None:
            self._node.destroy_subscription(self.subscription)
            self.subscription = None
