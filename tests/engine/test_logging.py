"""Progress off a terminal (plain lines, no carriage returns) and RUN/log.txt."""

from __future__ import annotations

import io
import sys

from boxer.engine.logging import OutputLog, Progress


def test_progress_off_a_terminal_writes_plain_lines():
    stream = io.StringIO()
    bar = Progress(3, desc="epoch 1/2", every_s=0.0, stream=stream)
    for _ in range(3):
        bar.update(1, loss="1.2345")
    bar.write("a message")
    bar.close()
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue() and "a message" in lines
    assert lines[-1].startswith("epoch 1/2: 3/3 it (100%)") and lines[-1].endswith("loss=1.2345")


def test_progress_is_quiet_between_intervals():
    stream = io.StringIO()
    bar = Progress(100, desc="eval", unit="batch", every_s=3600, stream=stream)
    for _ in range(100):
        bar.update()
    assert stream.getvalue() == ""
    bar.close()
    (line,) = stream.getvalue().splitlines()
    assert line.startswith("eval: 100/100 batch (100%)")


def test_output_log_keeps_what_was_printed_from_before_attach(tmp_path):
    with OutputLog() as output:
        print("before the run folder exists")
        print("to stderr", file=sys.stderr)
        output.attach(tmp_path / "log.txt")
        print("after")
        sys.stderr.write("frame 1\rframe 2\n")
    print("not logged")
    text = (tmp_path / "log.txt").read_text()
    assert text.splitlines()[1:] == ["before the run folder exists", "to stderr", "after", "frame 2"]


def test_output_log_without_attach_writes_nothing(tmp_path, capsys):
    with OutputLog():
        print("hello")
    assert capsys.readouterr().out == "hello\n" and not list(tmp_path.iterdir())
