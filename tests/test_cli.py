import pytest

from bratseg.cli import main


def predict(capsys, tmp_path, *args):
    """``bratseg predict --model m.pt ARGS --output <tmp>/o.nii.gz``: exit code and stderr lines."""
    with pytest.raises(SystemExit) as exc:
        main(["predict", "--model", "m.pt", *args, "--output", str(tmp_path / "o.nii.gz")])
    return exc.value.code, capsys.readouterr().err.strip().splitlines()


def test_case_and_single_files_are_exclusive(tmp_path, capsys):
    code, err = predict(capsys, tmp_path, "--case", str(tmp_path), "--t1", "a.nii.gz")
    assert code == 1 and err == ["error: predict: give either --case or the four modality files, not both"]


def test_missing_single_files_are_listed(tmp_path, capsys):
    code, err = predict(capsys, tmp_path, "--t1", "a.nii.gz", "--flair", "b.nii.gz")
    assert code == 1 and err[-1].endswith("(missing --t1ce --t2)")


def test_unknown_case_folder_is_one_line(tmp_path, capsys):
    code, err = predict(capsys, tmp_path, "--case", str(tmp_path / "nope"))
    assert code == 1 and len(err) == 1 and "does not exist" in err[0]
    (tmp_path / "patient7").mkdir()
    code, err = predict(capsys, tmp_path, "--case", str(tmp_path / "patient7"))
    assert code == 1 and "matches no BraTS layout" in err[-1]
