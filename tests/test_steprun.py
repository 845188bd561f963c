import logging

import pytest

from bratseg.errors import CaseError
from bratseg.steprun import run_step


def test_known_error_is_one_line_on_the_console_and_logged(tmp_path, capsys):
    log = tmp_path / "logs" / "step.log"

    def fail():
        raise CaseError("BraTS2021_00001", "a/b_t1.nii.gz", "missing modality t1")

    with pytest.raises(SystemExit) as exc:
        run_step("ingest", fail, log)
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert err == "error: BraTS2021_00001: a/b_t1.nii.gz: missing modality t1\n"
    assert "missing modality t1" in log.read_text()


def test_unexpected_error_keeps_its_traceback(tmp_path):
    log = tmp_path / "step.log"
    with pytest.raises(ZeroDivisionError):
        run_step("x", lambda: 1 / 0, log)
    assert "Traceback" in log.read_text()


def test_success_returns_the_result_and_logs_time(tmp_path):
    log = tmp_path / "step.log"
    assert run_step("x", lambda: 42, log) == 42
    assert "step x done in" in log.read_text()
    logging.getLogger().handlers.clear()
