"""pytest fixtures for testing programs that write or read shmview streams, headless.

Installed with shmview and registered through the ``pytest11`` entry point ``shmview``
(``-p no:shmview`` turns it off). Each test that uses a fixture gets a registry folder of
its own (``SHMVIEW_REGISTRY``, mode 0700, under pytest's temporary folder; processes it
starts inherit it), so tests can run in parallel (pytest-xdist) and never see each
other's streams or the user's own::

    def test_solid_frames_have_exact_sums(shmview_producer, shmview_reader):
        producer = shmview_producer("synthetic", "--pattern", "solid", "--size", "64x48")
        frame = shmview_reader(producer.name).wait(timeout=5)
        assert frame.image.sum() == (frame.index % 256) * 64 * 48 * 3

- ``shmview_stream(shape=(480, 640, 3), dtype="uint8", *, name=None, **kw)``: a
  FrameWriter with a unique name, closed at teardown.
- ``shmview_reader(name, *, timeout=10.0, **kw)``: ``FrameReader.open(...)`` (``name``
  may be a writer or a producer), closed at teardown.
- ``shmview_producer(*args, name=None, timeout=10.0, source=None, env=None)``: a real
  ``shmview produce ARGS...`` process (or, with ``source="pkg.mod:factory"``,
  ``serve(factory(*ARGS), name)``), ready; see viewer.testing.Producer.
- ``shmview_no_litter``: fail the test if blocks, registry records, child processes or
  open /dev/shm mappings made during it are left over.

At teardown, readers and writers are closed and producers stopped (SIGTERM). Like
pytest-qt with exceptions in Qt virtual methods, problems are recorded and the test
fails once, after every fixture has torn down: a producer that exited with a code the
test did not expect (its stderr is quoted), or left a block, record or process behind;
leftovers for ``shmview_no_litter``. The ini option ``shmview_cleanup_timeout`` (default
5 s) is how long leftovers may take to go.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from viewer.stream.reader import FrameReader
from viewer.stream.writer import FrameWriter
from viewer.testing import LitterCheck, Producer, start_producer, unique_name

_KIT = pytest.StashKey["StreamKit"]()


class StreamKit:
    """What one test made through the fixtures, and what went wrong with it."""

    def __init__(self, registry: Path, cleanup_timeout: float) -> None:
        self.registry = registry
        self.cleanup_timeout = cleanup_timeout
        self.problems: list[str] = []
        self.litter: LitterCheck | None = None
        self._opened = ExitStack()
        self._producers: list[Producer] = []

    def stream(
        self, shape: tuple[int, ...] = (480, 640, 3), dtype: Any = "uint8", *, name: str | None = None, **options: Any
    ) -> FrameWriter:
        writer = FrameWriter(name or unique_name(), shape, dtype, **options)
        self._opened.callback(writer.close)
        return writer

    def reader(self, name: Any, *, timeout: float = 10.0, **options: Any) -> FrameReader:
        reader = FrameReader.open(getattr(name, "name", name), timeout=timeout, **options)
        self._opened.callback(reader.close)
        return reader

    def producer(
        self,
        *args: str,
        name: str | None = None,
        timeout: float = 10.0,
        source: str | None = None,
        env: dict[str, str] | None = None,
    ) -> Producer:
        __tracebackhide__ = True  # a producer that fails to start: show the test's line and its stderr
        producer = start_producer(*args, name=name, timeout=timeout, source=source, env=env)
        self._producers.append(producer)
        return producer

    def close(self) -> None:
        """Close readers and writers (newest first), then stop the producers."""
        try:
            self._opened.close()
        except Exception as exc:  # reported with the rest, after every fixture's teardown
            self.problems.append(f"closing a stream or reader failed: {exc!r}")
        for producer in self._producers:
            self.problems.extend(producer.finish(self.cleanup_timeout))

    def check_litter(self) -> None:
        if self.litter is not None and (left := self.litter.wait(self.cleanup_timeout)):
            self.problems.append(str(left))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        "shmview_cleanup_timeout",
        "seconds the shmview fixtures wait at teardown for blocks, records and processes to go (default 5)",
        default="5",
    )


@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_runtest_teardown(item: pytest.Item) -> Iterator[None]:
    """After every fixture has torn down: the litter check, then fail once with all
    problems. If a teardown failed already, its error goes on with ours as notes."""
    try:
        result = yield
    except BaseException as exc:
        if hasattr(exc, "add_note"):  # Python 3.11+
            for problem in _problems(item):
                exc.add_note(f"shmview: {problem}")
        raise
    if problems := _problems(item):
        pytest.fail("shmview: " + "\nshmview: ".join(problems), pytrace=False)
    return result


def _problems(item: pytest.Item) -> list[str]:
    kit = item.stash.get(_KIT, None)
    if kit is None:
        return []
    kit.check_litter()
    return kit.problems


@pytest.fixture
def _shmview_kit(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[StreamKit]:
    folder = tmp_path_factory.mktemp("shmview-registry")
    folder.chmod(0o700)  # the registry refuses a folder others can read
    monkeypatch.setenv("SHMVIEW_REGISTRY", str(folder))
    kit = StreamKit(folder, float(request.config.getini("shmview_cleanup_timeout")))
    request.node.stash[_KIT] = kit
    yield kit
    kit.close()


@pytest.fixture
def shmview_stream(_shmview_kit: StreamKit) -> Callable[..., FrameWriter]:
    """``shmview_stream(shape=(480, 640, 3), dtype="uint8", *, name=None, **kw)``: a
    FrameWriter (``kw``: ``pixel_format``, ``slots``) with a unique name, closed at teardown."""
    return _shmview_kit.stream


@pytest.fixture
def shmview_reader(_shmview_kit: StreamKit) -> Callable[..., FrameReader]:
    """``shmview_reader(name, *, timeout=10.0, **kw)``: ``FrameReader.open(name, timeout,
    **kw)`` (``follow=True`` follows restarts), closed at teardown. ``name`` may be a
    stream's name, a writer or a producer."""
    return _shmview_kit.reader


@pytest.fixture
def shmview_producer(_shmview_kit: StreamKit) -> Callable[..., Producer]:
    """``shmview_producer(*args, name=None, timeout=10.0, source=None, env=None)``: runs
    ``shmview produce ARGS...`` (``--name`` added unless given), or with
    ``source="pkg.mod:factory"`` ``serve(factory(*ARGS), name)`` (importable from the test),
    and returns once its ready line came (ProducerError with its stderr if it exited
    first). The handle: ``name``, ``block``, ``pid``, ``returncode``, ``output``,
    ``stderr``, ``stop(sig=SIGTERM)``, ``wait(timeout)``, ``expect_exit(*codes)``.
    At teardown it is stopped; the test fails if it exited with a code other than 0, the
    ``-sig`` of a ``stop(sig)`` or one declared with ``expect_exit``, or left a block, a
    record or a process behind."""
    return _shmview_kit.producer


@pytest.fixture
def shmview_no_litter(_shmview_kit: StreamKit) -> LitterCheck:
    """Fails the test if blocks, registry records, child processes or /dev/shm mappings
    made from now on are still there after teardown (never other programs' blocks).
    Returns the viewer.testing.LitterCheck, whose ``leftovers()`` can be asked mid-test."""
    _shmview_kit.litter = LitterCheck(registry=_shmview_kit.registry)
    return _shmview_kit.litter
