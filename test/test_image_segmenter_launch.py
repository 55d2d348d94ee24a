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
Proof of life through the real launch file, with launch_testing (pytest's plugin or launch_test).

Starts launch/image_segmenter.launch.py, publishes camera frames on the remapped topic and
checks that category masks come back with the input's header and size, and that the node
exits cleanly when launch shuts down.
"""

import array
import importlib.util
import os
import time
import unittest

from launch_harness import MISSING, use_install_space
import numpy as np
import pytest
import rclpy
from rclpy.qos import qos_profile_sensor_data, QoSProfile, QoSReliabilityPolicy
from ros_harness import domain_id
from sensor_msgs.msg import Image

# Without launch_testing its pytest plugin is absent and a module-level skip is safe; with it,
# the plugin imports this module while collecting, where a skip would end the whole run, so
# the launch test is marked skipped instead.
if importlib.util.find_spec('launch_testing') is None:
    pytest.skip('launch_testing cannot run here: ' + MISSING, allow_module_level=True)

from ament_index_python.packages import get_package_share_directory  # noqa: E402, I100
from launch import LaunchDescription  # noqa: E402
from launch.actions import IncludeLaunchDescription, SetEnvironmentVariable  # noqa: E402
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402
import launch_testing  # noqa: E402
import launch_testing.actions  # noqa: E402
import launch_testing.asserts  # noqa: E402

DOMAIN = domain_id(__name__)
# The test node runs in this process: loopback only, as every process of the tests.
os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
os.environ.pop('ROS_LOCALHOST_ONLY', None)
CAMERA_TOPIC = '/launch_test/camera/image_raw'


@pytest.mark.launch_test
@pytest.mark.skipif(bool(MISSING),
                    reason='launch_testing cannot run here: %s' % MISSING)
def generate_test_description():
    use_install_space()  # as `source install/setup.bash` would
    launch_file = os.path.join(get_package_share_directory('image_segmenter_ros'), 'launch',
                               'image_segmenter.launch.py')
    return LaunchDescription([
        SetEnvironmentVariable('ROS_DOMAIN_ID', str(DOMAIN)),
        IncludeLaunchDescription(
            PythonLaunchDescriptionSource(launch_file),
            launch_arguments={'image_topic': CAMERA_TOPIC, 'namespace': 'launch_test',
                              'running_mode': 'LIVE_STREAM'}.items()),
        launch_testing.actions.ReadyToTest(),
    ])


class TestMasksComeBack(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        rclpy.init(domain_id=DOMAIN)
        cls.node = rclpy.create_node('image_segmenter_launch_test')

    @classmethod
    def tearDownClass(cls):
        cls.node.destroy_node()
        rclpy.shutdown()

    def test_category_mask_has_the_input_header_and_size(self):
        masks = []
        self.node.create_subscription(
            Image, '/launch_test/category_mask', masks.append,
            QoSProfile(depth=10, reliability=QoSReliabilityPolicy.RELIABLE))
        publisher = self.node.create_publisher(Image, CAMERA_TOPIC, qos_profile_sensor_data)
        gradient = np.tile(np.arange(320, dtype=np.uint8)[np.newaxis, :, np.newaxis],
                           (240, 1, 3))
        frame = Image(height=240, width=320, encoding='rgb8', step=960,
                      data=array.array('B', gradient.tobytes()))
        frame.header.frame_id = 'launch_test_camera'
        deadline = time.monotonic() + 30.0
        while not masks and time.monotonic() < deadline:  # camera-like stream until seen
            frame.header.stamp = self.node.get_clock().now().to_msg()
            publisher.publish(frame)
            rclpy.spin_once(self.node, timeout_sec=0.1)
        self.assertTrue(masks, 'no category_mask within 30 s')
        mask = masks[0]
        self.assertEqual(mask.header.frame_id, 'launch_test_camera')
        self.assertEqual((mask.height, mask.width, mask.encoding), (240, 320, 'mono8'))


@launch_testing.post_shutdown_test()
class TestShutdown(unittest.TestCase):

    def test_exit_code(self, proc_info):
        launch_testing.asserts.assertExitCodes(proc_info)
