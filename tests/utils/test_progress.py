"""Progress where no bar can be drawn: a line now and then, and one at the end."""

import io

import pytest

from cranerec.utils.progress import ProgressLines, as_mode, counter, progress_mode


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_a_bar_a_log_file_lines_and_quiet_nothing():
    assert progress_mode(True, _Tty()) == "bar"
    assert progress_mode(True, io.StringIO()) == "lines"
    assert progress_mode(False, _Tty()) == "off"


def test_lines_say_how_far_the_work_is_then_the_end():
    out = io.StringIO()
    with ProgressLines("texts", 10, every_s=0.0, stream=out) as lines:
        for _ in range(5):
            lines.update(2)
    said = out.getvalue().splitlines()
    # a line after each update but the last, which the closing line says once
    assert [s.split(",")[0] for s in said] == [
        "texts: 2 / 10 (20%)", "texts: 4 / 10 (40%)", "texts: 6 / 10 (60%)",
        "texts: 8 / 10 (80%)", "texts: 10 / 10 (100%)",
    ]  # fmt: skip


def test_lines_wait_their_interval():
    out = io.StringIO()
    with ProgressLines("images", 1000, every_s=3600.0, stream=out) as lines:
        for _ in range(1000):
            lines.update(1)
    assert out.getvalue().splitlines()[0].startswith("images: 1,000 / 1,000 (100%)")
    assert len(out.getvalue().splitlines()) == 1


def test_a_failed_piece_of_work_does_not_claim_to_be_done():
    out = io.StringIO()
    with pytest.raises(RuntimeError), ProgressLines("texts", 4, stream=out) as lines:
        lines.update(1)
        raise RuntimeError("boom")
    assert out.getvalue() == ""


def test_progress_arguments_are_checked():
    assert as_mode(True) == "bar" and as_mode(False) == "off" and as_mode("lines") == "lines"
    with pytest.raises(ValueError, match="progress"):
        as_mode("yes")
    assert counter("x", 3, "lines").total == 3


class _BrokenPipe(io.StringIO):
    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")


def test_a_stderr_that_cannot_be_written_never_fails_the_work():
    with ProgressLines("texts", 2, every_s=0.0, stream=_BrokenPipe()) as lines:
        lines.update(1)
        lines.update(1)
    assert lines.done == 2
