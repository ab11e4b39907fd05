"""The pytest plugin (issue 11): the fixtures run as a user's project would run them (pytester,
in a pytest subprocess), including the ways they must fail: a leaked block, a producer that
cannot start, one that dies, one that leaves a process behind."""

from __future__ import annotations

import os
import re
import signal
import textwrap
from pathlib import Path

import pytest

from tests.support.plugin import LEAVES_A_PROCESS, plugin_args, solid_sum
from viewer import FrameWriter

SMALL = ("--size", "64x48")


# The fixtures here too, next to this suite's own litter check (tests/conftest.py).
pytest_plugins = ["pytester", *plugin_args()[1:]]


def run_inner(pytester: pytest.Pytester, *args: str, cleanup: float = 5.0) -> pytest.RunResult:
    """pytest in a subprocess over the files made in ``pytester.path``, as a user's project
    runs it: warnings are errors, no pytest-qt (the kit needs no Qt)."""
    return pytester.runpytest_subprocess(
        *plugin_args(),
        "-p",
        "no:pytest-qt",
        "-p",
        "no:cacheprovider",
        "-W",
        "error",
        "-o",
        f"shmview_cleanup_timeout={cleanup}",
        *args,
        timeout=180,
    )


# the fixtures ---------------------------------------------------------------------------


def test_the_fixtures_next_to_this_suites_own_litter_check(
    shmview_producer, shmview_reader, shmview_stream, shmview_no_litter, private_registry
):
    """tests/conftest.py gives each test a registry and checks for leftovers too: the kit's
    registry wins while the test runs, and both checks pass, once each."""
    assert os.environ["SHMVIEW_REGISTRY"] != str(private_registry)
    producer = shmview_producer("synthetic", "--pattern", "solid", *SMALL)
    frame = shmview_reader(producer).wait(timeout=10)
    assert frame.image.sum() == solid_sum(frame.index, (48, 64, 3))
    stream = shmview_stream((2, 2))
    records = Path(os.environ["SHMVIEW_REGISTRY"]).glob("*.json")  # (each stream's bell lies beside it)
    assert {p.name for p in records} == {
        f"{producer.name}.json",
        f"{stream.name}.json",
    }


# the fixtures, in a user's project ------------------------------------------------------


def test_the_fixtures_in_a_well_behaved_project(pytester):
    pytester.makepyfile(
        test_user=textwrap.dedent("""\
        import os, stat
        import numpy as np

        def test_stream_and_reader(shmview_stream, shmview_reader, shmview_no_litter):
            stream = shmview_stream((4, 6), "uint16")
            reader = shmview_reader(stream)
            stream.write(np.full((4, 6), 1000, np.uint16))
            assert reader.wait(timeout=5).image.sum() == 24000

        def test_producer_sums(shmview_producer, shmview_reader, shmview_no_litter):
            producer = shmview_producer("synthetic", "--pattern", "solid", "--size", "64x48", "--fps", "100")
            reader = shmview_reader(producer.name)
            for _, frame in zip(range(5), reader.frames(timeout=5)):
                assert frame.image.sum() == (frame.index % 256) * 64 * 48 * 3

        def test_a_named_stream(shmview_stream):
            assert shmview_stream((2, 2), name="cam0").name == "cam0"

        def test_each_test_has_a_private_registry(shmview_stream, tmp_path_factory):
            folder = os.environ["SHMVIEW_REGISTRY"]
            assert folder.startswith(str(tmp_path_factory.getbasetemp()))
            assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
            shmview_stream((2, 2))
            assert len([n for n in os.listdir(folder) if n.endswith(".json")]) == 1
    """)
    )
    run_inner(pytester).assert_outcomes(passed=4)


def test_the_users_own_streams_are_out_of_sight(pytester):
    """A stream of the user's session (here: this test's registry) is invisible inside."""
    pytester.makepyfile(
        test_user="""
        import pytest
        from viewer import FrameReader, StreamNotFoundError

        def test_no_cam0(shmview_stream):
            with pytest.raises(StreamNotFoundError):
                FrameReader("cam0")
            shmview_stream((2, 2), name="cam0")  # and the name is free
    """
    )
    with FrameWriter("cam0", (2, 2)):
        run_inner(pytester).assert_outcomes(passed=1)


def test_a_test_that_leaks_a_block_fails_naming_it(pytester):
    pytester.makepyfile(
        test_leaky="""
        from pathlib import Path
        from viewer import FrameWriter

        KEPT = []

        def test_leaks(shmview_no_litter):
            writer = FrameWriter("leaky", (4, 4))  # never closed (shmview closes it at exit)
            Path("block.txt").write_text(writer.block_name)
            KEPT.append(writer)
    """
    )
    result = run_inner(pytester, cleanup=0.5)
    result.assert_outcomes(passed=1, errors=1)
    block = (pytester.path / "block.txt").read_text()
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_leaks*",
            f"shmview: left behind: blocks: /dev/shm/{block} (producer pid *, this process)*leaky.json*",
        ]
    )


def test_a_producer_that_crashes_at_start_fails_the_test_with_its_stderr(pytester):
    pytester.makepyfile(broken_camera="def make():\n    raise OSError('no camera on /dev/video7')\n")
    pytester.makepyfile(
        test_start="""
        def test_camera(shmview_producer):
            shmview_producer(source="broken_camera:make")

        def test_cli(shmview_producer):
            shmview_producer("synthetic", "--size", "0x0")
    """
    )
    result = run_inner(pytester)
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        [
            "E *ProducerError: producer t-* exited with code 1 before it was ready; its stderr:",
            "E *OSError: no camera on /dev/video7",
            "E *ProducerError: producer t-* exited with code 2 before it was ready; its stderr:",
            "E *size '0x0' is out of range*",
        ]
    )


def test_a_producer_that_dies_during_a_test_fails_it_unless_expected(pytester):
    pytester.makepyfile(
        test_dies="""
        import os, signal

        def test_killed_behind_its_back(shmview_producer):
            producer = shmview_producer("synthetic", "--size", "8x8")
            os.kill(producer.pid, signal.SIGKILL)
            producer.wait()

        def test_killed_on_purpose(shmview_producer):
            assert shmview_producer("synthetic", "--size", "8x8").stop(signal.SIGKILL) == -9

        def test_declared(shmview_producer):
            producer = shmview_producer("synthetic", "--size", "8x8")
            producer.expect_exit(-9)
            os.kill(producer.pid, signal.SIGKILL)
    """
    )
    result = run_inner(pytester)
    result.assert_outcomes(passed=3, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_killed_behind_its_back*",
            "shmview: producer t-* (pid *) was killed by SIGKILL (exit code -9), expected 0; its stderr was empty",
        ]
    )


def test_a_producer_that_leaves_a_process_behind_fails_the_test(pytester):
    pytester.makepyfile(forks=LEAVES_A_PROCESS)
    pytester.makepyfile(
        test_forks="""
        def test_forks(shmview_producer):
            shmview_producer(source="forks:Forks")
    """
    )
    result = run_inner(pytester, cleanup=0.5)
    result.assert_outcomes(passed=1, errors=1)
    line = next(x for x in result.outlines if "left behind: process" in x)
    assert re.search(r"shmview: producer t-\S+ \(pid \d+\) left behind: process \d+: sleep 60", line), line
    os.kill(int(re.search(r"process (\d+): sleep", line)[1]), signal.SIGKILL)


def test_the_kit_loads_no_qt_and_no_opencv(pytester):
    pytester.makepyfile(
        test_modules="""
        import sys

        def test_modules(shmview_stream, shmview_reader):
            shmview_reader(shmview_stream((2, 2)))
            assert not [m for m in sys.modules if m.split(".")[0] in {"PyQt6", "cv2"}]
    """
    )
    run_inner(pytester).assert_outcomes(passed=1)


def test_parallel_tests_with_the_same_names_do_not_meet(pytester):
    pytest.importorskip("xdist")
    pytester.makepyfile(
        test_parallel="""
        import pytest

        @pytest.mark.parametrize("k", range(6))
        def test_same_names(shmview_stream, shmview_producer, shmview_reader, k):
            shmview_stream((2, 2), name="cam0")
            producer = shmview_producer("synthetic", "--size", "8x8", name="cam1")
            assert shmview_reader("cam1").wait(timeout=10) is not None
    """
    )
    run_inner(pytester, "-p", "xdist", "-n", "2").assert_outcomes(passed=6)


def test_the_entry_point_registers_the_plugin(pytester):
    if plugin_args():
        pytest.skip("the installed shmview predates its pytest11 entry point (reinstall: pip install -e .)")
    pytester.makepyfile(test_it="def test_it(shmview_stream):\n    shmview_stream((2, 2))\n")
    run_inner(pytester).assert_outcomes(passed=1)
    result = pytester.runpytest_subprocess("-p", "no:shmview", "-p", "no:cacheprovider", timeout=180)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'shmview_stream' not found*"])
