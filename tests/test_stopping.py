"""How a stage stops (numpynet.stopping): signals held while outputs are renamed arrive after
the renames, SIGTERM stops like Ctrl-C, and the last line says what was written."""

from __future__ import annotations

import os
import signal

import pytest

from numpynet import stopping
from numpynet.files import atomic_outputs, write_json, write_text


def test_a_signal_during_a_held_block_arrives_when_it_ends():
    reached_the_end = False
    with pytest.raises(KeyboardInterrupt):
        with stopping.signals_held():
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(1000):  # time for the handler to run, were it not held
                pass
            reached_the_end = True
    assert reached_the_end
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_sigterm_in_a_stage_is_a_stop_naming_it_and_the_handler_is_put_back():
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(stopping.Stopped) as stopped:
        with stopping.stoppable():
            with stopping.signals_held():
                os.kill(os.getpid(), signal.SIGTERM)
    assert signal.getsignal(signal.SIGTERM) == before
    assert stopped.value.cause == "by SIGTERM" and stopping.exit_status(stopped.value) == 143
    assert stopping.stop_message(stopped.value) == "interrupted by SIGTERM: nothing was written"


def test_the_message_lists_the_outputs_written_once_each(tmp_path):
    with stopping.stoppable():
        write_text(tmp_path / "a.txt", "1")
        write_text(tmp_path / "a.txt", "2")
        with atomic_outputs(tmp_path / "m.json", tmp_path / "plots") as (metrics, plots):
            plots.mkdir()
            write_text(plots / "drawn.txt", "a draft inside a temporary folder is no output")
            write_json(metrics, {})
    message = stopping.stop_message(KeyboardInterrupt())
    assert message == (f"interrupted by SIGINT: {tmp_path / 'a.txt'}, {tmp_path / 'm.json'} and "
                       f"{tmp_path / 'plots'} were written in full first")


def test_a_stage_report_replaces_the_list():
    stop = KeyboardInterrupt()
    stop.report = "the checkpoint stays"
    assert stopping.stop_message(stop) == "interrupted by SIGINT: the checkpoint stays"
