"""Properties of incremental syncs, over generated event files and cursors."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from onetomany.plugins.settings import PluginSettings
from onetomany_csv import CsvSource

OFFSETS = st.sampled_from(
    [UTC, timezone(timedelta(hours=-3)), timezone(timedelta(hours=5, minutes=30))]
)
MOMENTS = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2030, 12, 31), timezones=OFFSETS
)
EVENT_ROWS = st.lists(
    st.tuples(
        st.sampled_from(["login", "export", "signup"]),
        MOMENTS,
        st.sampled_from(["c1", "c2", "c3"]),
    ),
    max_size=20,
    # Rows identical in content are one event to a file without ids; generate distinct ones.
    unique_by=lambda row: (row[0], row[1].astimezone(UTC), row[2]),
)


Row = tuple[str, datetime, str]


def _sync(rows: list[Row], cursor: str | None) -> tuple[str | None, list[Row]]:
    """Write ``rows`` as an events file, sync it, and return the cursor and the events."""
    with tempfile.TemporaryDirectory() as folder:
        lines = ["name,occurred_at,contact_id"]
        lines += [f"{name},{moment.isoformat()},{contact}" for name, moment, contact in rows]
        Path(folder, "events.csv").write_text("\n".join(lines) + "\n")
        options: dict[str, Any] = {"events": "events.csv"}
        source = CsvSource(
            PluginSettings(name="crm", plugin="csv", options=options, base_dir=folder)
        )
        result = source.sync(cursor=cursor)
    returned = [(e.name, e.occurred_at, e.contact_id or "") for e in result.events]
    return result.cursor, returned


@settings(deadline=None)
@given(rows=EVENT_ROWS, data=st.data())
def test_incremental_sync_returns_exactly_the_events_after_the_cursor(
    rows: list[Row], data: st.DataObject
) -> None:
    # Cursors right at an event's time probe the strict "after" boundary.
    at_an_event = [moment for _, moment, _ in rows]
    since = data.draw(
        st.none() | MOMENTS | (st.sampled_from(at_an_event) if at_an_event else st.nothing())
    )
    cursor = since.isoformat() if since is not None else None

    new_cursor, returned = _sync(rows, cursor)

    expected = [
        (name, moment.astimezone(UTC), contact)
        for name, moment, contact in rows
        if since is None or moment > since
    ]
    assert returned == expected
    if returned:
        assert new_cursor is not None
        assert all(datetime.fromisoformat(new_cursor) >= moment for _, moment, _ in returned)
    else:
        assert new_cursor == cursor
