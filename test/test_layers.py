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
The package's layers: engine (no ROS) <- node glue <- tools, and nothing the other way.

The engine must work where ROS is not installed, so it is imported and run in a Python whose
import system refuses every ROS module.
"""

import ast
from pathlib import Path
import subprocess
import sys
import textwrap

PACKAGE = Path(__file__).resolve().parents[1] / 'image_segmenter_ros'
LAYERS = ('engine', 'node', 'tools')
# What each layer may import from the package: only the layers below it.
ALLOWED = {'engine': {'engine'}, 'node': {'engine', 'node'}, 'tools': {'engine', 'node', 'tools'}}

ROS_BLOCKER = textwrap.dedent("""
    import importlib.abc
    import sys

    ROS_ROOTS = ('rclpy', 'rcl_interfaces', 'builtin_interfaces', 'rosidl_runtime_py',
                 'rosgraph_msgs', 'ament_index_python', 'rosbags')

    class BlockRos(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            root = name.split('.')[0]
            if root in ROS_ROOTS or root.endswith('_msgs'):
                raise ImportError('ROS is not installed here: %s' % name)
            return None

    sys.meta_path.insert(0, BlockRos())
    try:
        import rclpy  # noqa: F401
    except ImportError:
        pass
    else:
        raise SystemExit('the import hook did not block rclpy')
""")


def run_without_ros(code: str) -> subprocess.CompletedProcess:
    """Run code in a fresh Python in which every ROS import raises ImportError."""
    return subprocess.run([sys.executable, '-c', ROS_BLOCKER + textwrap.dedent(code)],
                          capture_output=True, text=True, timeout=120)


def test_the_tree_shows_three_layers():
    subpackages = sorted(p.name for p in PACKAGE.iterdir() if (p / '__init__.py').is_file())
    assert subpackages == list(LAYERS)
    loose = sorted(p.name for p in PACKAGE.glob('*.py'))
    assert loose == ['__init__.py'], 'modules outside a layer: %s' % loose


def package_imports(path: Path) -> set:
    """Return the layers a module imports from, relative and absolute imports alike."""
    layer = path.parent.name
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1:
                found.add(layer)
            elif node.level == 2:
                found.add((node.module or '').split('.')[0] or 'root')
            elif (node.module or '').startswith('image_segmenter_ros'):
                parts = node.module.split('.')
                found.add(parts[1] if len(parts) > 1 else 'root')
    return found


def test_each_layer_imports_only_the_layers_below_it():
    for layer in LAYERS:
        for module in (PACKAGE / layer).glob('*.py'):
            used = package_imports(module)
            assert used <= ALLOWED[layer], '%s imports from %s' % (
                module.relative_to(PACKAGE), sorted(used - ALLOWED[layer]))


def test_engine_imports_and_segments_without_ros(legacy_models):
    result = run_without_ros("""
        import pkgutil
        import numpy as np
        import image_segmenter_ros.engine as engine
        from image_segmenter_ros import (ImageSegmenter, ImageSegmenterOptions,
                                         ImageSegmenterResult, RunningMode)
        for module in pkgutil.iter_modules(engine.__path__):
            __import__('image_segmenter_ros.engine.' + module.name)
        options = ImageSegmenterOptions(model_path=%r, output_category_mask=True,
                                        running_mode=RunningMode.IMAGE)
        with ImageSegmenter.create_from_options(options) as segmenter:
            result = segmenter.segment(np.zeros((48, 64, 3), np.uint8))
        assert isinstance(result, ImageSegmenterResult)
        assert result.category_mask.shape == (48, 64)
        loaded = sorted(name for name in sys.modules
                        if name.startswith('image_segmenter_ros.')
                        and not name.startswith('image_segmenter_ros.engine'))
        assert not loaded, loaded
        print('engine ok')
    """ % str(legacy_models['selfie_segmentation']))
    assert result.returncode == 0, result.stderr
    assert 'engine ok' in result.stdout


def test_node_needs_ros_and_says_so():
    """The blocker is real: the node's module fails to import under it."""
    result = run_without_ros('import image_segmenter_ros.node.image_segmenter_node')
    assert result.returncode != 0
    assert 'ROS is not installed here' in result.stderr
