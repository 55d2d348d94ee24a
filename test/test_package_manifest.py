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

"""Every module the package imports is declared: in package.xml, or in requirements.txt."""

import ast
from pathlib import Path
import re
import sys
from typing import Set
import xml.etree.ElementTree as ElementTree

PACKAGE_ROOT = Path(__file__).resolve().parents[1]
# Python modules whose rosdep key is not their own name.
ROSDEP_KEYS = {'cv2': 'python3-opencv', 'flatbuffers': 'python3-flatbuffers',
               'numba': 'python3-numba', 'numpy': 'python3-numpy', 'tqdm': 'python3-tqdm',
               'yaml': 'python3-yaml'}
# Modules rosdep has no key for: they come from pip, as requirements.txt pins them.
# tflite_runtime is the optional fallback of robots that ship it instead of ai-edge-litert.
PIP_ONLY = {'ai_edge_litert': 'ai-edge-litert', 'rosbags': 'rosbags', 'tflite_runtime': None}


def imported_modules() -> Set[str]:
    """Top-level third-party modules imported by the package and its launch files."""
    sources = sorted(PACKAGE_ROOT.glob('image_segmenter_ros/**/*.py'))
    sources += sorted(PACKAGE_ROOT.glob('launch/*.py'))
    modules = set()
    for source in sources:
        for node in ast.walk(ast.parse(source.read_text(), str(source))):
            if isinstance(node, ast.Import):
                modules.update(alias.name.split('.')[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                modules.add(node.module.split('.')[0])
    return {module for module in modules
            if module not in sys.stdlib_module_names and module != 'image_segmenter_ros'}


def exec_depends() -> Set[str]:
    root = ElementTree.parse(PACKAGE_ROOT / 'package.xml').getroot()
    return {element.text.strip() for element in root.iter('exec_depend')}


def test_every_imported_module_is_declared():
    declared = exec_depends()
    requirements = (PACKAGE_ROOT / 'requirements.txt').read_text()
    undeclared = []
    for module in sorted(imported_modules()):
        if module in PIP_ONLY:
            distribution = PIP_ONLY[module]
            if distribution and not re.search(r'^%s\b' % re.escape(distribution), requirements,
                                              re.MULTILINE):
                undeclared.append('%s (requirements.txt: %s)' % (module, distribution))
        elif ROSDEP_KEYS.get(module, module) not in declared:
            undeclared.append('%s (package.xml: %s)' % (module, ROSDEP_KEYS.get(module, module)))
    assert not undeclared, 'imported but not declared: ' + ', '.join(undeclared)


def test_every_exec_depend_is_used():
    keys_in_use = {ROSDEP_KEYS.get(module, module) for module in imported_modules()}
    assert exec_depends() - keys_in_use == set()
