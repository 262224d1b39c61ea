"""The README's example runs as written, on the embedded log, with no service."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def _run_block(index: int, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the README's ``index``-th python block in ``cwd``, as a new user would paste it."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert len(blocks) > index
    run = subprocess.run([sys.executable, "-c", blocks[index]], cwd=cwd,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    return run


def test_readme_opens_with_the_two_commands() -> None:
    text = README.read_text()
    first_block = re.search(r"```bash\n(.*?)```", text, re.S)
    assert first_block is not None
    commands = [line.split("#")[0].strip() for line in first_block.group(1).splitlines()]
    assert commands == ["make demo", "make test"]


def test_readme_example_runs(tmp_path: Path) -> None:
    code = re.search(r"```python\n(.*?)```", README.read_text(), re.S)
    assert code is not None
    assert len(code.group(1).strip().splitlines()) <= 17
    run = subprocess.run([sys.executable, "-c", code.group(1)], cwd=tmp_path,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout == "alert: card-2 990.0\n"
    assert (tmp_path / ".eventml").is_dir()


def test_readme_pipeline_example_runs(tmp_path: Path) -> None:
    run = _run_block(1, tmp_path)
    assert run.stdout == "alert: card-1 550.0\n"


def test_readme_contract_example_runs(tmp_path: Path) -> None:
    run = _run_block(2, tmp_path)
    assert run.stdout == "ok: 12.5\n"
    dlq = subprocess.run([sys.executable, "-m", "eventml", "dlq", "list", "payments"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=60)
    assert dlq.returncode == 0, dlq.stderr
    assert "amount" in dlq.stdout and len(dlq.stdout.strip().splitlines()) == 1


def test_readme_feature_view_example_runs(tmp_path: Path) -> None:
    run = _run_block(3, tmp_path)
    assert run.stdout.splitlines() == [
        "[{'tx_1h': 1, 'spend_1h': 5.0}]",
        "[{'entity': 'card-1', 'event_timestamp_ms': 1767269700000, 'tx_1h': 2, 'spend_1h': 50.0}]",
    ]
