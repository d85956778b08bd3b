"""The example's emails as the demo writes them (.eml files in its outbox folder): every
non-transactional one carries both List-Unsubscribe headers, the token in them verifies for
its recipient and topic, and the same token with one character changed is refused."""

from __future__ import annotations

import email
import email.policy
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from onetomany.cli.simulate import Simulator
from onetomany.plugins.builtin.outbox_folder import file_stem
from onetomany.program import load_program
from onetomany.rules.unsubscribe import TokenError, verify_token
from onetomany.store import Store

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "onboarding"
URL = "https://app.acme-analytics.test/onetomany/unsubscribe/"


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """Two weeks of the example, sent to its outbox folder as ``make demo`` does."""
    folder = tmp_path_factory.mktemp("demo") / "onboarding"
    shutil.copytree(EXAMPLE, folder, ignore=shutil.ignore_patterns("var"))
    program = load_program(folder)
    url = f"sqlite:///{folder.parent / 'simulation.db'}"
    Simulator(
        program,
        datetime(2026, 9, 1, tzinfo=UTC),
        datetime(2026, 9, 15, tzinfo=UTC),
        step=timedelta(hours=3),
        store_url=url,
    ).run()
    store = Store(url)
    rows = {file_stem(r.idempotency_key): r for r in store.outbox_rows()}
    store.close()
    emails = sorted((folder / "var" / "outbox").glob("*.eml"))
    return program, [(rows[path.stem], path) for path in emails]


def _headers(path: Path) -> email.message.EmailMessage:
    return email.message_from_bytes(path.read_bytes(), policy=email.policy.default)  # type: ignore[return-value]


def test_every_non_transactional_demo_email_has_both_headers_and_a_token_that_verifies(demo):
    program, emails = demo
    checked = set()
    for row, path in emails:
        topic = program.touch(row.touch).topic
        parsed = _headers(path)
        if program.topics[topic].transactional:
            assert parsed["List-Unsubscribe"] is None, path.name
            continue
        assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click", path.name
        links = [link.strip().strip("<>") for link in str(parsed["List-Unsubscribe"]).split(",")]
        https, mailto = links
        assert https.startswith(URL) and mailto.startswith("mailto:unsubscribe@acme-analytics")
        token = https[len(URL) :]
        claims = verify_token(program.unsubscribe, token, now=datetime.now(UTC))
        assert (claims.contact_id, claims.topic) == (row.contact_id, topic)
        # The footer link carries the same token (the template's unsubscribe_url).
        bodies = [part.get_content() for part in parsed.walk() if not part.is_multipart()]
        assert any(token in body for body in bodies), path.name
        checked.add(row.touch)
    assert {"welcome", "day_recap"} <= checked


def test_a_demo_token_with_one_character_changed_is_refused(demo):
    program, emails = demo
    row, path = next((r, p) for r, p in emails if r.touch == "welcome")
    token = str(_headers(path)["List-Unsubscribe"]).split(",")[0].strip("<> ")[len(URL) :]
    for i in (0, len(token) // 2, len(token) - 1):
        changed = token[:i] + ("x" if token[i] != "x" else "y") + token[i + 1 :]
        with pytest.raises(TokenError, match="refused"):
            verify_token(program.unsubscribe, changed, now=datetime.now(UTC))
    assert verify_token(program.unsubscribe, token, now=datetime.now(UTC)).contact_id == (
        row.contact_id
    )
