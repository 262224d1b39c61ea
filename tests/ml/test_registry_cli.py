"""`eventml models`: happy paths, JSON output, and one-line errors with a non-zero exit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from eventml.cli.app import main
from eventml.ml import ModelRegistry

SCORE = "tests.ml.test_registry:row_sum"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def reg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.delenv("EVENTML_MODELS", raising=False)
    monkeypatch.setenv("EVENTML_BROKER", f"embedded://{tmp_path}/data")  # restored after the test
    return str(tmp_path / "models")


@pytest.fixture
def skops_file(tmp_path: Path) -> Path:
    import skops.io as sio
    from sklearn.linear_model import LogisticRegression

    x = np.random.default_rng(0).normal(size=(100, 2))
    path = tmp_path / "lr.skops"
    sio.dump(LogisticRegression().fit(x, x[:, 0] > 0), path)
    return path


def test_register_list_show_alias_promote(
    capsys: pytest.CaptureFixture[str], reg: str, skops_file: Path
) -> None:
    code, out, _ = run(capsys, "models", "register", "fraud", str(skops_file), "--flavor",
                       "sklearn", "--features", "amount,velocity", "--metric", "auc=0.93",
                       "--metric", "recall=0.5", "--code-version", "abc", "-r", reg)
    assert code == 0 and out.startswith("registered fraud/1 (sklearn, sha256 ")
    code, out, _ = run(capsys, "models", "register", "fraud", SCORE, "--flavor", "callable",
                       "-r", reg, "--json")
    assert code == 0 and orjson.loads(out)["version"] == 2

    assert run(capsys, "models", "alias", "fraud", "challenger", "2", "-r", reg)[1] == (
        "fraud@challenger -> 2 (was none)\n")
    assert run(capsys, "models", "promote", "fraud", "1", "-r", reg)[1] == (
        "fraud@champion -> 1 (was none)\n")
    assert run(capsys, "models", "promote", "fraud", "2", "-r", reg)[1] == (
        "fraud@champion -> 2 (was 1)\n")
    assert run(capsys, "models", "promote", "fraud", "1", "--alias", "challenger", "-r", reg)[1] == (
        "fraud@challenger -> 1 (was 2)\n")

    code, out, _ = run(capsys, "models", "list", "-r", reg)
    assert code == 0
    assert out.splitlines() == ["NAME   LATEST  VERSIONS  ALIASES",
                                "fraud       2         2  challenger=1, champion=2"]
    code, out, _ = run(capsys, "models", "list", "-r", reg, "--json")
    assert orjson.loads(out)[0]["aliases"] == {"challenger": 1, "champion": 2}

    code, out, _ = run(capsys, "models", "show", "fraud/1", "-r", reg)
    assert code == 0 and out.startswith("fraud/1  (sklearn)")
    assert "amount, velocity" in out and "auc=0.93, recall=0.5" in out and "abc" in out
    shown: dict[str, Any] = orjson.loads(run(capsys, "models", "show", "fraud@challenger",
                                             "-r", reg, "--json")[1])
    assert shown["version"] == 1 and shown["metrics"] == {"auc": 0.93, "recall": 0.5}
    assert orjson.loads(run(capsys, "models", "show", "fraud", "-r", reg, "--json")[1])[
        "version"] == 2


def test_registry_location_env_and_broker_data_dir(
    capsys: pytest.CaptureFixture[str], reg: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run(capsys, "models", "register", "a", SCORE, "--flavor", "callable")[0] == 0
    assert ModelRegistry(tmp_path / "data" / "models").resolve("a").version == 1  # the broker's dir
    assert run(capsys, "--broker", f"embedded://{tmp_path}/other", "models", "register", "b",
               SCORE, "--flavor", "callable")[0] == 0
    assert ModelRegistry(tmp_path / "other" / "models").resolve("b").version == 1
    monkeypatch.setenv("EVENTML_MODELS", reg)
    assert run(capsys, "models", "register", "c", SCORE, "--flavor", "callable")[0] == 0
    assert [m.name for m in ModelRegistry(reg).list_models()] == ["c"]


@pytest.mark.parametrize(("args", "needle", "code"), [
    (["show", "nope"], "no model named 'nope'", 1),
    (["show", "m/7"], "model 'm' has no version 7 (latest is 1)", 1),
    (["show", "m@champion"], "model 'm' has no alias 'champion'", 1),
    (["show", "bad name"], "invalid model name 'bad name'", 2),
    (["show", "m/x"], "invalid version in 'm/x'", 2),
    (["register", "m", "/no/such/file", "--flavor", "sklearn"], "no artifact file at", 2),
    (["register", "m", SCORE, "--flavor", "torch"], "unknown flavor 'torch'", 2),
    (["register", "m", "os:nothing_here", "--flavor", "callable"], "cannot import", 2),
    (["register", "m", SCORE, "--flavor", "callable", "--metric", "auc"], "KEY=NUMBER", 2),
    (["register", "m", SCORE, "--flavor", "callable", "--metric", "auc=hi"], "KEY=NUMBER", 2),
    (["register", "m/1", SCORE, "--flavor", "callable"], "invalid model name 'm/1'", 2),
    (["alias", "m", "1bad", "1"], "invalid alias '1bad'", 2),
    (["alias", "m", "champion", "5"], "model 'm' has no version 5", 1),
    (["promote", "nope", "1"], "no model named 'nope'", 1),
    (["promote", "m", "x"], "Invalid value for 'version'", 2),
])
def test_bad_arguments_are_one_line_errors(
    capsys: pytest.CaptureFixture[str], reg: str, args: list[str], needle: str, code: int
) -> None:
    ModelRegistry(reg).register("m", SCORE, flavor="callable")
    result, _, err = run(capsys, "models", *args, "-r", reg)
    assert result == code
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert needle in lines[0], lines[0]


def test_an_invalid_onnx_file_is_refused_in_one_line(
    capsys: pytest.CaptureFixture[str], reg: str, tmp_path: Path
) -> None:
    (tmp_path / "bad.onnx").write_bytes(b"not a protobuf")
    code, _, err = run(capsys, "models", "register", "m", str(tmp_path / "bad.onnx"),
                       "--flavor", "onnx", "-r", reg)
    assert code == 2 and err.startswith("eventml: error: not a valid ONNX model")
    assert len(err.strip().splitlines()) == 1
    assert ModelRegistry(reg).list_models() == []


def test_reads_of_a_missing_registry_say_so_and_create_nothing(
    capsys: pytest.CaptureFixture[str], reg: str, tmp_path: Path
) -> None:
    missing = tmp_path / "typo" / "models"
    code, _, err = run(capsys, "models", "show", "fraud", "-r", str(missing))
    assert code == 1 and err.startswith(f"eventml: error: no model registry at {missing} ")
    assert len(err.strip().splitlines()) == 1
    code, out, _ = run(capsys, "models", "list", "-r", str(missing))
    assert code == 0 and out.startswith(f"no model registry at {missing} ")
    assert run(capsys, "models", "list", "-r", str(missing), "--json")[1] == "[]\n"
    code, _, err = run(capsys, "models", "promote", "fraud", "1", "-r", str(missing))
    assert code == 1 and "no model registry at" in err
    code, _, _ = run(capsys, "models", "show", "fraud")  # the default location, read only
    assert code == 1
    assert list(tmp_path.iterdir()) == []  # neither --registry nor <data dir>/models created
    assert run(capsys, "models", "register", "fraud", SCORE, "--flavor", "callable",
               "-r", str(missing))[0] == 0  # a write creates it
    assert run(capsys, "models", "show", "fraud", "-r", str(missing))[0] == 0


def test_register_records_the_training_range_and_show_prints_it(
    capsys: pytest.CaptureFixture[str], reg: str
) -> None:
    code, _, err = run(capsys, "models", "register", "fraud", SCORE, "--flavor", "callable",
                       "--training-topic", "payments", "--training-offsets", "0:0-100,1:5-90",
                       "--training-from", "2026-11-01T00:00:00Z", "--training-to",
                       "2026-11-08T00:00:00Z", "-r", reg)
    assert code == 0, err
    code, out, _ = run(capsys, "models", "show", "fraud/1", "-r", reg)
    assert ("  training      topic payments; offsets p0 0..100, p1 5..90 (end exclusive); "
            "time 2026-11-01T00:00:00+00:00..2026-11-08T00:00:00+00:00") in out.splitlines()
    shown = orjson.loads(run(capsys, "models", "show", "fraud/1", "-r", reg, "--json")[1])
    assert shown["training"] == {
        "topic": "payments", "start_offsets": {"0": 0, "1": 5}, "end_offsets": {"0": 100, "1": 90},
        "start_ms": 1_793_491_200_000, "end_ms": 1_794_096_000_000,
    }
    for args, needle in [
        (["--training-offsets", "0:9-1"], "--training-offsets takes PARTITION:START-END"),
        (["--training-offsets", "zero"], "--training-offsets takes PARTITION:START-END"),
        (["--training-from", "yesterday"], "cannot read time 'yesterday'"),
        (["--training-from", "2026-11-08T00:00:00Z", "--training-to", "2026-11-01T00:00:00Z"],
         "--training-from (2026-11-08T00:00:00Z) is after --training-to"),
    ]:
        code, _, err = run(capsys, "models", "register", "fraud", SCORE, "--flavor", "callable",
                           *args, "-r", reg)
        assert code == 2 and len(err.strip().splitlines()) == 1 and needle in err, err
    assert [m.versions for m in ModelRegistry(reg).list_models()] == [1]  # none of those landed
