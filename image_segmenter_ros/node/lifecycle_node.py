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
The ``image_segmenter`` node as a managed (lifecycle) node, for bringups with a manager.

The same parameters, topics and behaviour as the plain node, its steps taken on the
transitions of ROS 2's managed-node state machine:

- configure: check the parameters and load the model; a problem fails the transition with
  the start-up sentence (logged, and in /diagnostics) and the node stays unconfigured;
- activate: publish the labels, subscribe and segment (lifecycle publishers);
- deactivate: unsubscribe, no frame is taken; the model stays loaded;
- cleanup: free the model and the topics; shutdown from any state is clean.
"""

from typing import Any

from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.node import Node

from .image_segmenter_node import SegmenterCore
from .parameters import ConfigurationError, NODE_NAME


class ImageSegmenterLifecycleNode(SegmenterCore, LifecycleNode):
    """The segmenter as a managed node: no model until configured, no frame taken inactive."""

    def __init__(self, **kwargs: Any):
        super().__init__(NODE_NAME, **kwargs)
        try:
            self._declare()
        except BaseException:
            Node.destroy_node(self)
            raise

    def _publisher(self, msg_type: type, topic: str, qos_profile: Any, **kwargs: Any) -> Any:
        publisher = self.create_lifecycle_publisher(msg_type, topic, qos_profile, **kwargs)
        if self._state == 'active':  # created by a reconfiguration
            publisher.on_activate(None)
        return publisher

    def _destroy_publisher(self, publisher: Any) -> None:
        self.destroy_lifecycle_publisher(publisher)

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self._configure()
        except ConfigurationError as error:
            self._cleanup()
            self._last_problem = str(error)
            self.get_logger().error('Not configured: %s' % error)
            return TransitionCallbackReturn.FAILURE
        self._last_problem = ''
        return super().on_configure(state)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        result = super().on_activate(state)  # enables the publishers
        self._activate()
        return result

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._deactivate()
        self.get_logger().info('Inactive: %s is not taken any more.' % self._input_topic)
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._cleanup()
        return super().on_cleanup(state)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._cleanup()
        return super().on_shutdown(state)

    def destroy_node(self) -> None:
        self._release()
        super().destroy_node()
