"""The load and fault suite: four workers on PostgreSQL, SIGKILLs, provider faults with
Retry-After and a database restart; nothing may be lost and duplicates stay within the
in-flight rows of the killed workers.

The short form (2,000 touches) runs with the other tests; ``make load`` runs the full form
(``ONETOMANY_LOAD_TOUCHES=50000``) and prints its figures.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.load import harness
from tests.postgres import PostgresUnavailable, running_postgres, unavailable

SHORT = 2_000


@pytest.mark.slow
def test_no_touch_is_lost_under_kills_faults_and_a_database_restart(tmp_path: Path) -> None:
    touches = harness.touches_from_env(SHORT)
    short = touches <= SHORT
    settings = harness.Settings(
        touches=touches, kill_every=5.0 if short else 15.0, timeout=900.0 if short else 7200.0
    )
    try:
        with running_postgres("onetomany_load") as cluster:
            report = harness.run(cluster.url(), cluster.restart, settings, tmp_path)
    except PostgresUnavailable as exc:
        unavailable(str(exc))
    print("\n" + "\n".join(report.lines()))
    assert report.lost == 0, report.lost_rows
    assert report.duplicates <= report.duplicate_bound, report.duplicate_keys
    assert report.kills >= 1
    assert report.restarts == 1
    assert report.faults >= 0.15 * report.calls, "the provider did not fail as often as asked"
