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

from glob import glob

from setuptools import find_packages, setup

package_name = 'image_segmenter_ros'

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
        ('share/' + package_name + '/launch', glob('launch/*.launch.*')),
        ('share/' + package_name + '/config', glob('config/*.yaml') + glob('config/*.xml')),
        ('share/' + package_name + '/models', glob('models/*.yaml') + glob('models/*.md')),
    ],
    install_requires=['setuptools'],
    zip_safe=True,
    maintainer='image_segmenter_ros maintainers',
    maintainer_email='maintainers@image-segmenter-ros.invalid',
    description='MediaPipe Image Segmenter models as a ROS 2 node: category and confidence masks.',
    license='Apache-2.0',
    extras_require={'test': ['pytest', 'hypothesis']},
    entry_points={
        'console_scripts': [
            'fetch_models = image_segmenter_ros.engine.model_catalog:main',
            'image_segmenter_lifecycle_node = image_segmenter_ros.node.main:lifecycle_main',
            'image_segmenter_node = image_segmenter_ros.node.main:main',
            'make_sample_bag = image_segmenter_ros.tools.make_sample_bag:main',
            'record = image_segmenter_ros.tools.record:main',
            'render = image_segmenter_ros.tools.render:main',
            'repair_bag = image_segmenter_ros.tools.repair_bag:main',
            'replay_bag = image_segmenter_ros.tools.replay_bag:main',
            'segment_bag = image_segmenter_ros.tools.segment_bag:main',
        ],
    },
)
