"""Output paths are checked before any work: files, inputs, foreign folders, existing results."""

from __future__ import annotations

import os

import pytest

from boxer.engine.outputs import check_output_file, check_run_dir
from boxer.errors import BoxerError


def test_run_dir_checks(tmp_path):
    check_run_dir(tmp_path / "new" / "run")  # a new folder is fine
    (tmp_path / "file").write_text("x")
    with pytest.raises(BoxerError, match="is a file"):
        check_run_dir(tmp_path / "file")
    with pytest.raises(BoxerError, match="which is a file, not a folder"):
        check_run_dir(tmp_path / "file" / "run")
    data = tmp_path / "data"
    (data / "train").mkdir(parents=True)
    with pytest.raises(BoxerError, match="would write into the input folder"):
        check_run_dir(data / "train" / "run", inputs=[str(data)])
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "me.jpg").write_text("x")
    with pytest.raises(BoxerError, match=r"not a boxer run \(me.jpg\)"):
        check_run_dir(tmp_path / "photos")
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "config.json").write_text("{}")
    check_run_dir(tmp_path / "half")  # an earlier run that stopped before its first checkpoint


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_run_dir_not_writable(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    with pytest.raises(BoxerError, match="not writable"):
        check_run_dir(locked / "run")


def test_output_file_checks(tmp_path):
    ann = tmp_path / "instances_val.json"
    ann.write_text("{}")
    check_output_file(tmp_path / "out" / "results.json", flag="--results")
    with pytest.raises(BoxerError, match="is a folder"):
        check_output_file(tmp_path, flag="--results")
    with pytest.raises(BoxerError, match="input file"):
        check_output_file(ann, flag="--results", inputs=[ann], overwrite=True)
    (tmp_path / "old.json").write_text("[]")
    with pytest.raises(BoxerError, match="exists; pass --overwrite"):
        check_output_file(tmp_path / "old.json", flag="--results")
    check_output_file(tmp_path / "old.json", flag="--results", overwrite=True)
