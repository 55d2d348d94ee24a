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
Tests of the model catalog against real files.

The legacy models are really extracted from the mediapipe 0.10.21 wheel on PyPI (cached in
$IMAGE_SEGMENTER_ROS_MODEL_DIR when set). URL downloads are exercised against a loopback HTTP
server and against the real model hosts, which may or may not be reachable.
"""

import functools
import http.server
import os
from pathlib import Path
import shutil
import threading
import time
from typing import Iterator

from image_segmenter_ros.engine import model_catalog
from image_segmenter_ros.engine.model_catalog import (
    fetch, load_manifest, main, manifest_path, model_dir, ModelChecksumError,
    ModelDownloadError, ModelNotFoundError, recorded_sha256_path, resolve_model, sha256_of,
    verify)
import numpy as np
import pytest
import yaml

LEGACY = {
    # name: (sha256 prefix and size published for the wheel's files, input shape)
    'selfie_segmentation': ('9ee168ec', 249505, [1, 256, 256, 3]),
    'selfie_segmentation_landscape': ('a77d03f4', 250145, [1, 144, 256, 3]),
}
ALL_NAMES = ['selfie_segmentation', 'selfie_segmentation_landscape', 'selfie_segmenter',
             'selfie_segmenter_landscape', 'hair_segmenter', 'selfie_multiclass_256x256',
             'deeplab_v3']


@pytest.fixture(scope='session')
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Use the session's model cache when one is configured, so the wheel is fetched once."""
    configured = os.environ.get(model_catalog.MODEL_DIR_ENV)
    return Path(configured) if configured else tmp_path_factory.mktemp('models')


@pytest.fixture(scope='session')
def legacy_models(cache_dir: Path) -> dict[str, Path]:
    """Fetch the real legacy models (from the PyPI wheel unless already cached)."""
    return {name: fetch(name, directory=cache_dir) for name in LEGACY}


def test_manifest_lists_every_model() -> None:
    manifest = load_manifest()
    assert list(manifest) == ALL_NAMES
    assert manifest_path().name == 'manifest.yaml'
    label_counts = {name: len(entry.labels) for name, entry in manifest.items()}
    assert label_counts == {
        'selfie_segmentation': 1, 'selfie_segmentation_landscape': 1, 'selfie_segmenter': 1,
        'selfie_segmenter_landscape': 1, 'hair_segmenter': 2, 'selfie_multiclass_256x256': 6,
        'deeplab_v3': 21}
    assert manifest['deeplab_v3'].labels[15] == 'person'
    assert manifest['deeplab_v3'].input_size == (257, 257)
    assert manifest['hair_segmenter'].labels == ('background', 'hair')
    assert manifest['selfie_segmentation_landscape'].input_size == (144, 256)
    for entry in manifest.values():
        assert entry.license_id == 'Apache-2.0'
        assert entry.description
        if entry.pipeline == 'legacy':
            assert entry.source.kind == 'pypi_wheel'
            assert entry.sha256 is not None
        else:
            assert entry.source.kind == 'url'
            assert entry.source.url.startswith('https://storage.googleapis.com/mediapipe-models/')
            assert entry.source.url.endswith('/' + entry.file)


def test_legacy_models_fetch_and_match_published_checksums(
        legacy_models: dict[str, Path], cache_dir: Path) -> None:
    manifest = load_manifest()
    for name, (prefix, size, _) in LEGACY.items():
        path = legacy_models[name]
        assert path == cache_dir / manifest[name].file
        assert path.stat().st_size == size
        assert manifest[name].sha256.startswith(prefix)
        assert sha256_of(path) == manifest[name].sha256
        assert verify(path, manifest[name]) == manifest[name].sha256
        assert resolve_model(name, directory=cache_dir) == path


def test_fetch_extracts_both_legacy_models_from_one_wheel_download(tmp_path: Path) -> None:
    manifest = load_manifest()
    paths = [fetch(name, directory=tmp_path) for name in LEGACY]
    for name, path in zip(LEGACY, paths):
        assert sha256_of(path) == manifest[name].sha256
        assert path.stat().st_mode & 0o444 == 0o444
    assert len(set(model_catalog._wheel_cache.values())) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        manifest[name].file for name in LEGACY)  # No temporary files left behind.
    # A second fetch keeps the valid files instead of rewriting them.
    mtimes = [p.stat().st_mtime_ns for p in paths]
    assert [fetch(name, directory=tmp_path) for name in LEGACY] == paths
    assert [p.stat().st_mtime_ns for p in paths] == mtimes


@pytest.mark.parametrize('name', list(LEGACY))
def test_legacy_models_run_in_litert(legacy_models: dict[str, Path], name: str) -> None:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(legacy_models[name]), num_threads=2)
    interpreter.allocate_tensors()
    (inp,) = interpreter.get_input_details()
    (out,) = interpreter.get_output_details()
    shape = LEGACY[name][2]
    assert list(inp['shape']) == shape
    assert list(out['shape']) == shape[:3] + [1]
    interpreter.set_tensor(inp['index'], np.full(shape, 0.5, dtype=np.float32))
    interpreter.invoke()
    mask = interpreter.get_tensor(out['index'])
    assert np.all((mask >= 0.0) & (mask <= 1.0))  # The models end in a sigmoid.


def test_corrupted_copy_fails_verification(legacy_models: dict[str, Path],
                                           tmp_path: Path) -> None:
    entry = load_manifest()['selfie_segmentation']
    broken = tmp_path / entry.file
    data = bytearray(legacy_models['selfie_segmentation'].read_bytes())
    data[len(data) // 2] ^= 0xFF
    broken.write_bytes(bytes(data))
    actual = sha256_of(broken)
    with pytest.raises(ModelChecksumError) as info:
        verify(broken, entry)
    message = str(info.value)
    assert entry.sha256 in message and actual in message
    assert 'fetch_models selfie_segmentation' in message
    with pytest.raises(ModelChecksumError):
        resolve_model('selfie_segmentation', directory=tmp_path)
    broken.write_bytes(bytes(data[:-1000]))  # an interrupted download
    with pytest.raises(ModelChecksumError, match='has %d bytes but %d were expected' % (
            len(data) - 1000, entry.size)):
        verify(broken, entry)
    # fetch replaces an invalid file with a good one.
    assert sha256_of(fetch('selfie_segmentation', directory=tmp_path)) == entry.sha256


def test_unknown_name_lists_known_names() -> None:
    with pytest.raises(ModelNotFoundError) as info:
        resolve_model('no_such_model')
    assert isinstance(info.value, FileNotFoundError)
    message = str(info.value)
    assert "'no_such_model'" in message
    for name in ALL_NAMES:
        assert name in message
    assert '\n' not in message and message.endswith('.')
    with pytest.raises(ModelNotFoundError):
        fetch('no_such_model')


def test_known_but_missing_model_names_the_fetch_command(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError) as info:
        resolve_model('deeplab_v3', directory=tmp_path)
    message = str(info.value)
    assert 'fetch_models deeplab_v3' in message
    assert str(tmp_path / 'deeplab_v3.tflite') in message
    assert '\n' not in message and message.count('. ') == 0
    assert not any(tmp_path.iterdir())  # Resolving never downloads.


def test_task_model_download_fails_clearly_or_succeeds(tmp_path: Path) -> None:
    entry = load_manifest()['deeplab_v3']
    started = time.monotonic()
    try:
        path = fetch('deeplab_v3', directory=tmp_path, timeout=5.0)
    except ModelDownloadError as exc:
        elapsed = time.monotonic() - started
        message = str(exc)
        assert elapsed < 30.0
        assert message.startswith("Model 'deeplab_v3' could not be downloaded from ")
        assert entry.source.url in message
        assert f'place the file by hand at {tmp_path / entry.file}.' in message
        assert '\n' not in message and message.count('. ') == 0
        assert not any(tmp_path.iterdir())  # No partial file is left behind.
    else:
        # The host was reachable: the file must be a verified model with a recorded hash.
        assert path == tmp_path / entry.file
        recorded = recorded_sha256_path(path).read_text().split()[0]
        assert recorded == sha256_of(path) == verify(path, entry)
        assert resolve_model('deeplab_v3', directory=tmp_path) == path


def test_existing_path_is_returned_unchanged(tmp_path: Path) -> None:
    model = tmp_path / 'my model.tflite'
    model.write_bytes(b'\0\0\0\0TFL3')
    assert resolve_model(str(model)) == model
    assert resolve_model(model) == model
    relative = os.path.relpath(model)
    assert resolve_model(relative) == Path(relative)


def test_model_dir_follows_env_and_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(model_catalog.MODEL_DIR_ENV, str(tmp_path / 'm'))
    assert model_dir() == tmp_path / 'm'
    monkeypatch.delenv(model_catalog.MODEL_DIR_ENV)
    monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path / 'xdg'))
    assert model_dir() == tmp_path / 'xdg' / 'image_segmenter_ros' / 'models'


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Static file handler that keeps the test output free of access logs."""

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_root(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """Serve a directory over HTTP on the loopback interface."""
    root = tmp_path / 'www'
    root.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f'http://127.0.0.1:{server.server_address[1]}'
    finally:
        server.shutdown()
        server.server_close()


def _write_url_manifest(path: Path, url: str, sha256: str = None) -> None:
    entry = {
        'name': 'served', 'file': 'served.tflite', 'pipeline': 'tasks',
        'source': {'kind': 'url', 'url': url}, 'sha256': sha256, 'size': None,
        'license': 'Apache-2.0', 'input_size': [256, 256], 'labels': ['selfie'],
        'description': 'A model served from the loopback interface.'}
    path.write_text(yaml.safe_dump({'schema_version': 1, 'models': [entry]}))


def test_url_download_records_hash_and_detects_later_changes(
        legacy_models: dict[str, Path], http_root: tuple[Path, str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    root, base = http_root
    shutil.copy(legacy_models['selfie_segmentation'], root / 'served.tflite')
    manifest_file = tmp_path / 'manifest.yaml'
    _write_url_manifest(manifest_file, f'{base}/served.tflite')
    monkeypatch.setenv(model_catalog.MANIFEST_ENV, str(manifest_file))
    models = tmp_path / 'models'

    path = fetch('served', directory=models, timeout=5.0)
    assert path.read_bytes() == (root / 'served.tflite').read_bytes()
    assert recorded_sha256_path(path).read_text().split()[0] == sha256_of(path)
    assert resolve_model('served', directory=models) == path

    path.write_bytes(path.read_bytes()[:-1] + b'\1')
    with pytest.raises(ModelChecksumError):
        resolve_model('served', directory=models)


def test_url_download_rejects_non_model_and_http_errors(
        http_root: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root, base = http_root
    (root / 'served.tflite').write_text('<html>Sign in to this network</html>')
    manifest_file = tmp_path / 'manifest.yaml'
    monkeypatch.setenv(model_catalog.MANIFEST_ENV, str(manifest_file))
    models = tmp_path / 'models'

    _write_url_manifest(manifest_file, f'{base}/served.tflite')
    with pytest.raises(ModelChecksumError, match='not a TFLite file'):
        fetch('served', directory=models, timeout=5.0)
    _write_url_manifest(manifest_file, f'{base}/missing.tflite')
    with pytest.raises(ModelDownloadError, match='HTTP 404'):
        fetch('served', directory=models, timeout=5.0)
    _write_url_manifest(manifest_file, f'{base}/served.tflite', sha256='0' * 64)
    with pytest.raises(ModelChecksumError, match='0' * 64):
        fetch('served', directory=models, timeout=5.0)
    assert not any(models.iterdir())


def test_cli_available_list_and_errors(legacy_models: dict[str, Path], cache_dir: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    manifest = load_manifest()
    assert main(['--model-dir', str(cache_dir), 'fetch', '--available', '--timeout', '5']) == 0
    out, err = capsys.readouterr()
    for name in LEGACY:
        assert f'{name}: {cache_dir / manifest[name].file}' in out
    for line in err.splitlines():  # One line per model that could not be fetched.
        assert line.startswith('Model ') and line.endswith('.')

    assert main(['--model-dir', str(cache_dir), 'list']) == 0
    out, _ = capsys.readouterr()
    for name in ALL_NAMES:
        assert name in out
    assert 'selfie_segmentation ' in out and 'present' in out

    # `fetch` may be left out, as in `fetch_models NAME`.
    assert main(['--model-dir', str(cache_dir), 'selfie_segmentation']) == 0
    assert main(['no_such_model']) == 1
    _, err = capsys.readouterr()
    assert 'known names: selfie_segmentation' in err
