"""`eventml views` as a user meets it: real processes, one-line errors."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from eventml.log import TopicSpec, open_log
from tests.views.conftest import ViewDb, append_orders, expected, orders

VIEWS_MODULE = '''
from eventml.views import Projection, Views


def by_customer(value, meta, table):
    row = table.get(value["customer"]) or {"orders": 0, "total": 0, "region": value["region"]}
    row["orders"] += 1
    row["total"] += value["amount"]
    table.put(value["customer"], row)


views = Views(Projection("by_customer", ["orders"], by_customer, indexed=["region"]))
not_views = 42
'''


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "myviews.py").write_text(VIEWS_MODULE)
    with open_log(f"embedded://{tmp_path}/data") as log:
        log.create_topic(TopicSpec("orders", 2))
        append_orders(log, "orders", orders(200))
    return tmp_path


def run(project: Path, *args: str, db: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("EVENTML_BROKER", "EVENTML_VIEWS", "EVENTML_VIEWS_DB")}
    env["EVENTML_BROKER"] = f"embedded://{project}/data"
    if db is not None:
        env["EVENTML_VIEWS_DB"] = db
    return subprocess.run([sys.executable, "-m", "eventml", "views", *args], capture_output=True,
                          text=True, env=env, cwd=project, timeout=120)


def one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode != 0 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_list_status_rebuild_get_query(project: Path, view_db: ViewDb) -> None:
    """SQLite: the default file in the data dir; PostgreSQL: $EVENTML_VIEWS_DB."""
    db = view_db.where if isinstance(view_db.where, str) else None
    cli = functools.partial(run, db=db)

    app = ("--app", "myviews:views")
    listed = cli(project, "list", *app)
    assert listed.stdout.strip() == "by_customer  <- orders  indexed: region"
    one_line_error(cli(project, "get", "by_customer", "c1", *app), "eventml views rebuild by_customer")

    before = orjson.loads(cli(project, "status", "by_customer", *app, "--json").stdout)
    assert before["lag"] == 200 and before["rows"] == 0

    rebuilt = cli(project, "rebuild", "by_customer", *app)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "200 events -> 7 rows" in rebuilt.stdout and "events/s" in rebuilt.stdout
    assert (project / "data" / "views" / "by_customer.sqlite").exists() == (db is None)

    after = orjson.loads(cli(project, "status", "by_customer", *app, "--json").stdout)
    assert after["path"].startswith("postgresql://" if db else str(project))
    assert after["lag"] == 0 and after["rows"] == 7
    assert [p["position"] for p in after["partitions"]] == [p["end_offset"] for p in after["partitions"]]

    want = expected(orders(200))
    got = orjson.loads(cli(project, "get", "by_customer", "c3", *app).stdout)
    assert got == {k: want["c3"][k] for k in ("orders", "total", "region")}

    lines = cli(project, "query", "by_customer", *app, "--where", "region=eu").stdout.splitlines()
    eu = sorted(k for k, v in want.items() if v["region"] == "eu")
    assert [orjson.loads(line)["key"] for line in lines] == eu
    n = cli(project, "query", "by_customer", *app, "-w", "region=eu", "-w", "orders=29", "--count")
    assert int(n.stdout) == sum(1 for k in eu if want[k]["orders"] == 29)

    one_line_error(cli(project, "get", "by_customer", "nobody", *app), "no row 'nobody'")
    one_line_error(cli(project, "query", "by_customer", *app, "--where", "region"), "FIELD=VALUE")
    one_line_error(cli(project, "query", "by_customer", *app, "--where", "bad field=1"),
                   "invalid field name")


@pytest.mark.parametrize(("args", "needle"), [
    (("list", "--app", "nomodule_here:views"), "cannot import 'nomodule_here'"),
    (("list", "--app", "myviews"), "module:attribute"),
    (("list", "--app", "myviews:missing"), "has no attribute 'missing'"),
    (("list", "--app", "myviews:not_views"), "expected a Projection"),
    (("status", "nope", "--app", "myviews:views"), "no view named 'nope' (known: by_customer)"),
    (("get", "by_customer", "c1", "--app", "myviews:views"), "eventml views rebuild by_customer"),
    (("get", "by_customer", "c1", "--app", "myviews:views", "--db", "postgresql://u:secret@127.0.0.1:1/x"),
     "view 'by_customer': PostgreSQL: "),
    (("get", "by_customer", "c1", "--app", "myviews:views", "--db", "mysql://h/x"),
     "unsupported view store URL"),
])
def test_bad_input_gets_one_line(project: Path, args: tuple[str, ...], needle: str) -> None:
    result = run(project, *args)
    one_line_error(result, needle)
    assert "secret" not in result.stderr
