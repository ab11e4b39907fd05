"""Zero copy (issue 12): a writer fills the slot in place, a reader computes on the slot
without copying, and neither ever hands out a torn frame without saying so."""

from __future__ import annotations

import numpy as np
import pytest

from tests.support import workers
from viewer import FrameReader, FrameWriter, ShmviewError, TornFrameError


def test_a_loan_publishes_on_leaving_the_block():
    with FrameWriter("loaned", (4, 4)) as w, FrameReader("loaned") as r:
        loan = w.loan(timestamp_ns=1234)
        with loan as pixels:
            assert pixels.shape == (4, 4) and pixels.flags.writeable
            pixels[:] = 7
            assert r.read() is None  # not published until the block ends
        assert loan.index == 0 and w.frames_written == 1
        frame = r.read()
        assert frame.index == 0 and frame.timestamp_ns == 1234 and frame.image.max() == 7
        with pytest.raises(ValueError):
            pixels[0, 0] = 1  # the stream's memory: read-only once the block ended


def test_an_exception_in_a_loan_publishes_nothing_and_the_index_is_reused():
    with FrameWriter("discard", (4, 4)) as w, FrameReader("discard") as r:
        w.write(np.full((4, 4), 1, np.uint8))
        with pytest.raises(RuntimeError), w.loan() as pixels:
            pixels[:2] = 99  # half a frame, then the producer's code fails
            raise RuntimeError("camera hiccup")
        frame = r.read()
        assert frame.index == 0 and frame.image.max() == 1  # the previous frame stays the newest
        for _ in range(3):  # round the whole ring: the discarded slot comes back
            with w.loan() as pixels:
                pixels[:] = 2
        assert [r.read().index, w.frames_written] == [3, 4]  # indices stay contiguous


def test_one_loan_at_a_time():
    with FrameWriter("single", (4, 4)) as w, w.loan(), pytest.raises(ShmviewError, match="loan open"):
        w.write(np.zeros((4, 4), np.uint8))


def test_a_view_is_the_slot_itself_and_read_only():
    with FrameWriter("viewed", (4, 4)) as w, FrameReader("viewed") as r:
        with r.view() as frame:
            assert frame is None
        w.write(np.full((4, 4), 5, np.uint8))
        with r.view() as frame:
            assert frame.index == 0 and frame.image.max() == 5
            assert not frame.image.flags.writeable and not frame.image.flags.owndata
            assert np.shares_memory(frame.image, r._att.mapping.held("viewed")[1].pixels[0])


def test_a_view_lapped_by_the_writer_says_it_may_be_torn():
    with FrameWriter("lapped", (4, 4)) as w, FrameReader("lapped") as r:
        w.write(np.full((4, 4), 1, np.uint8))
        with pytest.raises(TornFrameError, match="frame 0"), r.view() as frame:
            assert frame.index == 0
            for k in range(3):  # the writer comes round to frame 0's slot
                w.write(np.full((4, 4), k + 2, np.uint8))


def test_apply_computes_on_the_newest_frame_without_a_copy():
    with FrameWriter("applied", (48, 64, 3)) as w, FrameReader("applied") as r:
        assert r.apply(lambda f: 1) is None
        w.write(np.full((48, 64, 3), 3, np.uint8))
        assert r.apply(lambda f: (f.index, int(f.image.sum()))) == (0, 3 * 48 * 64 * 3)


def test_apply_under_a_flooding_writer_in_another_process_is_never_torn():
    def check(frame):  # every byte of frame k is k % 256 (the `solid` pattern)
        return frame.index, int(frame.image.min()), int(frame.image.max())

    with workers.flooding(workers.flood, "floodview", (480, 640, 3)) as writer, FrameReader("floodview") as r:
        r.wait(30)
        results = [r.apply(check) for _ in range(2000)]
    torn = [(k, lo, hi) for k, lo, hi in results if not lo == hi == k % 256]
    assert torn == [] and len({k for k, _, _ in results}) > 10
    assert writer.exitcode == 0


def test_a_view_of_an_earlier_frame_while_the_ring_holds_it():
    with FrameWriter("earlier", (4, 4), slots=4) as w, FrameReader("earlier") as r:
        for k in range(3):
            w.write(np.full((4, 4), k + 1, np.uint8))
        assert r.apply(lambda f: (f.index, int(f.image[0, 0])), index=1) == (1, 2)
        for k in range(3, 8):
            w.write(np.full((4, 4), k + 1, np.uint8))
        assert r.apply(lambda f: f.index, index=1) is None  # overwritten: gone
        with r.view(index=7) as frame:
            assert frame.index == 7 and frame.image.max() == 8
