"""The native-build cache on a tiny real CMake project: miss, hit, key, lock, failures."""

from __future__ import annotations

import io
import json
import multiprocessing
import os
import shutil
import subprocess
import time
from dataclasses import replace
from pathlib import Path
from typing import IO

import pytest

from perwatt.endpoints import server_build
from perwatt.endpoints.server_build import (
    LLAMA_SERVER,
    BuildProgress,
    BuildRecipe,
    SourcePatch,
    ensure_built,
    installed_build,
)
from perwatt.errors import PerwattError

pytestmark = pytest.mark.skipif(
    shutil.which("cmake") is None or shutil.which("cc") is None, reason="needs cmake and cc"
)

MAIN_C = '#include <stdio.h>\nint main(void) { puts("hello from %s"); return 0; }\n'
CMAKE = "cmake_minimum_required(VERSION 3.16)\nproject(tiny C)\nadd_executable(tiny main.c)\n"


def _fetch(workdir: Path, log: IO[str], progress: BuildProgress, *, body: str = "ok") -> Path:
    """Writes the tiny project; appends a line to fetches.txt so tests can count builds."""
    with (Path(os.environ["PERWATT_CACHE_DIR"]) / "fetches.txt").open("a") as f:
        f.write(f"{os.getpid()}\n")
    delay = float(os.environ.get("TINY_FETCH_DELAY", "0"))
    time.sleep(delay)
    src = workdir / "tiny"
    src.mkdir()
    (src / "CMakeLists.txt").write_text(CMAKE)
    (src / "main.c").write_text(MAIN_C % body if body != "broken" else "int main(void) { oops }\n")
    return src


def _fetch_broken(workdir: Path, log: IO[str], progress: BuildProgress) -> Path:
    return _fetch(workdir, log, progress, body="broken")


TINY = BuildRecipe(
    name="tiny",
    version="v1",
    target="tiny",
    cmake_options=("-DCMAKE_BUILD_TYPE=Release",),
    fetch_source=_fetch,
    description="a tiny test program",
    provenance={"revision": "v1-rev", "source": "written by the test"},
)


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("PERWATT_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("CMAKE_BUILD_PARALLEL_LEVEL", "1")
    return tmp_path


def _fetches(cache: Path) -> int:
    path = cache / "fetches.txt"
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_a_miss_builds_installs_atomically_and_a_hit_reuses(cache):
    progress = io.StringIO()
    binary = ensure_built(TINY, progress=BuildProgress(progress))
    assert binary == cache / "tiny" / TINY.key() / "tiny"
    said = subprocess.run([binary], capture_output=True, text=True).stdout
    assert said.strip() == "hello from ok"
    info = json.loads((binary.parent / "build.json").read_text())
    assert info["revision"] == "v1-rev"
    assert info["cmake_options"] == ["-DCMAKE_BUILD_TYPE=Release"]
    assert info["build_seconds"] > 0 and info["jobs"] == 1 and info["built_at"]
    assert len(info["cpu_flags_sha256"]) == 64
    assert "perwatt: built in" in (binary.parent / "build.log").read_text()
    assert not list((cache / "tiny").glob(".build-*"))  # the temporary build is gone
    assert not TINY.failed_log().exists()
    shown = progress.getvalue()
    assert "configuring a tiny test program" in shown and "built tiny in" in shown

    assert ensure_built(TINY) == binary  # a hit: nothing is fetched or built again
    assert _fetches(cache) == 1


def test_the_key_follows_the_cmake_options_and_the_cpu(cache, monkeypatch):
    other = replace(TINY, cmake_options=("-DCMAKE_BUILD_TYPE=Debug",))
    assert other.key() != TINY.key() and other.key().startswith("v1-")
    key = TINY.key()
    monkeypatch.setattr(server_build, "cpu_flags", lambda: ("sse2", "made-up-flag"))
    assert TINY.key() != key
    # The real recipe is keyed by the llama.cpp revision.
    assert LLAMA_SERVER.key().startswith(server_build.LLAMA_CPP_REVISION[:9] + "-")


def test_without_build_a_missing_binary_says_to_run_setup(cache):
    with pytest.raises(PerwattError, match="run `perwatt setup`"):
        ensure_built(TINY, build=False)
    assert _fetches(cache) == 0


def _build_in_child(queue) -> None:
    queue.put(str(ensure_built(TINY, progress=BuildProgress(io.StringIO()))))


def test_two_processes_never_build_at_once(cache, monkeypatch):
    monkeypatch.setenv("TINY_FETCH_DELAY", "1.0")
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    children = [ctx.Process(target=_build_in_child, args=(queue,)) for _ in range(2)]
    for child in children:
        child.start()
    for child in children:
        child.join(timeout=120)
        assert child.exitcode == 0
    paths = {queue.get(timeout=5) for _ in children}
    assert paths == {str(TINY.binary())}
    assert _fetches(cache) == 1  # the second waited on the lock, then found the build


def test_a_stale_temporary_build_is_cleaned_up(cache):
    stale = cache / "tiny" / ".build-old-12345"
    stale.mkdir(parents=True)
    ensure_built(TINY, progress=BuildProgress(io.StringIO()))
    assert not stale.exists()


def test_a_compile_error_is_one_line_naming_the_log(cache):
    broken = replace(TINY, fetch_source=_fetch_broken)
    with pytest.raises(PerwattError) as caught:
        ensure_built(broken, progress=BuildProgress(io.StringIO()))
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("building tiny failed: compiling tiny failed:")
    assert "error" in message and str(broken.failed_log()) in message
    assert "oops" in broken.failed_log().read_text()  # the compiler's own words are kept
    assert not broken.directory().exists()
    assert not list((cache / "tiny").glob(".build-*"))


def test_no_cmake_is_one_clear_line(cache, monkeypatch, tmp_path):
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.setattr(server_build.sys, "executable", str(empty / "python"))  # none beside it
    with pytest.raises(PerwattError, match=r"cmake is not installed .*\(log: "):
        ensure_built(TINY, progress=BuildProgress(io.StringIO()))
    assert _fetches(cache) == 0


def test_no_compiler_is_one_clear_line(cache, monkeypatch):
    monkeypatch.setenv("CXX", "/nonexistent/c++")
    with pytest.raises(PerwattError, match="no C\\+\\+ compiler found"):
        ensure_built(TINY, progress=BuildProgress(io.StringIO()))


def test_a_refused_download_is_one_clear_line_and_a_bad_cached_sdist_is_dropped(cache, monkeypatch):
    # A corrupt sdist in the cache is never used, and pip cannot reach any index.
    bad = server_build.sdist_path()
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"not the sdist")
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_NO_CACHE_DIR", "1")
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_TIMEOUT", "2")
    with pytest.raises(PerwattError) as caught:
        ensure_built(LLAMA_SERVER, progress=BuildProgress(io.StringIO()))
    message = str(caught.value)
    assert "\n" not in message
    assert "downloading llama-cpp-python==0.3.36 from PyPI failed" in message
    assert f"put the sdist (sha256 832db0699007…) at {bad}" in message
    assert "log: " in message
    assert not bad.exists()
    assert "wrong sha256" in LLAMA_SERVER.failed_log().read_text()


def test_progress_is_one_rewritten_line_on_a_terminal_and_sparse_in_a_log():
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty = Tty()
    progress = BuildProgress(tty)
    for k in range(1, 101):
        progress.update("building x", k, 100)
    progress.finish("built x")
    assert tty.getvalue().count("\n") == 1 and tty.getvalue().count("\r") == 101
    assert "building x [step 100/100]" in tty.getvalue()

    log = io.StringIO()
    progress = BuildProgress(log)
    progress.update("configuring x")
    for k in range(1, 101):
        progress.update("building x", k, 100)
    lines = log.getvalue().splitlines()
    assert lines[0] == "configuring x"
    assert len(lines) == 12  # the phase, then the first step and each further tenth
    assert lines[-1] == "building x [step 100/100]"


def test_an_external_binary_is_used_and_described(cache, monkeypatch, tmp_path):
    fake = tmp_path / "llama-server"
    fake.write_text("#!/bin/sh\necho 'version: 9.9 (build 7, commit abc1234)'\n")
    fake.chmod(0o755)
    monkeypatch.setenv(server_build.EXTERNAL_BINARY_ENV, str(fake))
    assert server_build.llama_server_binary(build=False) == fake
    build = installed_build(fake)
    assert build.revision == "abc1234" and build.source == "user-supplied binary"
    monkeypatch.setenv(server_build.EXTERNAL_BINARY_ENV, str(tmp_path / "missing"))
    with pytest.raises(PerwattError, match="is not an executable file"):
        server_build.llama_server_binary()


PATCH = SourcePatch(path="main.c", old='puts("hello from', new='puts("patched hello from',
                    reason="a test")  # fmt: skip


def test_a_source_patch_is_applied_keyed_and_recorded(cache):
    patched = replace(TINY, patches=(PATCH,))
    assert patched.key() != TINY.key()
    binary = ensure_built(patched, progress=BuildProgress(io.StringIO()))
    said = subprocess.run([binary], capture_output=True, text=True).stdout
    assert said.strip() == "patched hello from ok"
    info = json.loads((binary.parent / "build.json").read_text())
    assert info["patches"] == [PATCH.describe()] and info["patches"][0]["reason"] == "a test"
    assert "perwatt: patched main.c: a test" in (binary.parent / "build.log").read_text()


def test_a_patch_that_no_longer_applies_is_one_clear_line(cache):
    stale = replace(TINY, patches=(replace(PATCH, old="text that is not there"),))
    with pytest.raises(PerwattError, match=r"the source patch for main\.c no longer applies"):
        ensure_built(stale, progress=BuildProgress(io.StringIO()))
    assert not stale.directory().exists()


def test_the_pinned_sources_patches_apply_to_the_cached_sdist():
    sdist = server_build.sdist_path()
    if not sdist.is_file():
        pytest.skip("the sdist is not in the cache (perwatt setup downloads it)")
    import tarfile

    root = server_build.SDIST_FILE.removesuffix(".tar.gz") + "/vendor/llama.cpp/"
    with tarfile.open(sdist, "r:gz") as tar:
        for patch in LLAMA_SERVER.patches:
            handle = tar.extractfile(root + patch.path)
            assert handle is not None
            assert handle.read().decode().count(patch.old) == 1, patch.path
