"""`eventml features verify|get` as a user meets them: real processes, one-line errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson

from .test_online import _run
from .test_point_in_time import generate

MODULE = '''
from eventml.features import HOUR, FeatureView
from tests.features.test_point_in_time import VIEW_FEATURES

view = FeatureView("card_activity", entity="card", source={source!r}, features=VIEW_FEATURES,
                   ttl_ms=2 * HOUR, time="ts")
'''
ROOT = Path(__file__).resolve().parents[2]


def cli(tmp_path: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"PYTHONPATH": f"{tmp_path}:{ROOT}", "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-m", "eventml", "features", *args, "--broker", url],
                          capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)


def test_verify_and_get(tmp_path: Path) -> None:
    url = f"embedded://{tmp_path}/data"
    events = generate(seed=9, n=300)
    log, view, topics = _run(url, events)
    app = topics.online.removesuffix(f"-features-{view.name}")
    log.close()
    (tmp_path / "myfeatures.py").write_text(MODULE.format(source=view.source))

    ok = cli(tmp_path, url, "verify", "myfeatures:view", "--app", app, "--sample", "100")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == "card_activity: 100 served values vs point-in-time retrieval, 0 mismatches"

    card = max(events, key=lambda e: e[1])[0]  # the newest event: within the TTL at stream time
    got = cli(tmp_path, url, "get", "myfeatures:view", "--app", app, card, "nobody")
    assert got.returncode == 0, got.stderr
    rows = [orjson.loads(line) for line in got.stdout.splitlines()]
    assert rows[0]["key"] == card and rows[0]["tx_10m"] >= 1
    assert rows[1] == {"key": "nobody", **dict.fromkeys(view.feature_names)}

    for args, needle in [
        (("verify", "myfeatures:view", "--app", "other"), "no served values"),
        (("verify", "myfeatures", "--app", app), "module:attribute"),
        (("verify", "nosuchmodule:view", "--app", app), "cannot import"),
        (("get", "myfeatures:HOUR", "--app", app, "k"), "not a FeatureView"),
        (("get", "myfeatures:nothing", "--app", app, "k"), "has no attribute"),
    ]:
        bad = cli(tmp_path, url, *args)
        assert bad.returncode != 0 and "Traceback" not in bad.stderr, bad.stderr
        assert len(bad.stderr.strip().splitlines()) == 1 and needle in bad.stderr, bad.stderr
