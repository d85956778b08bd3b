"""NPS answers: the 0-10 buttons of a survey email (``{{ nps_url(score) }}``) lead here.

===========================  ==============================================================
``GET  /nps/{token}``        records ``nps_answered`` with the token's score, and shows a
                             comment form
``POST /nps/{token}``        the form: ``comment=`` (at most 2000 characters); records the
                             answer again, with the comment
===========================  ==============================================================

The answer is an event of the survey message's contact and account, carrying ``score``,
``comment`` (once given) and the message's key, touch and channel; the measuring layer
reports each contact's latest answer (docs/measuring.md). A button clicked twice records one
answer (the event id comes from the message and the score); another button is a newer answer.
The token is signed (:mod:`onetomany.rules.tracking_links`): one for another message, a score
outside 0-10, or any change to it is refused with 400 and nothing is recorded.
"""

from __future__ import annotations

import hashlib

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import BaseRoute, Route

from onetomany.engine import Engine
from onetomany.errors import InputError, OnetomanyError
from onetomany.rules.tracking_links import TrackingTokenError, verify_nps
from onetomany.store.queries.outbox import outbox_row
from onetomany.web.context import HTTPProblem, WebContext
from onetomany.web.page_strings import STRINGS, language
from onetomany.web.pages import esc, page, refused

NPS_ANSWERED = "nps_answered"
MAX_COMMENT = 2000


def record_answer(engine: Engine, key: str, score: int, comment: str = "") -> str:
    """Store the answer to the message keyed ``key``; returns the contact's locale. An
    unknown key is an InputError and nothing is stored."""
    row = outbox_row(engine.store, key)
    if row is None or row.contact_id is None:
        raise InputError("the survey this link answers is not in the store; nothing recorded")
    digest = hashlib.sha256(f"{key}\0{score}\0{comment}".encode()).hexdigest()[:40]
    properties: dict[str, object] = {
        "score": score,
        "idempotency_key": key,
        "touch": row.touch,
        "channel": row.channel,
    }
    if comment:
        properties["comment"] = comment
    engine.track(
        NPS_ANSWERED,
        contact_id=row.contact_id,
        account_id=row.account_id,
        properties=properties,
        id=f"nps-{digest}",
    )
    contact = engine.store.get_contact(row.contact_id)
    return contact.locale if contact else "en"


def routes(context: WebContext) -> list[BaseRoute]:
    engine = context.engine

    async def answer(request: Request) -> HTMLResponse:
        try:
            key, score = verify_nps(engine.program.unsubscribe, request.path_params["token"])
            comment = ""
            if request.method == "POST":
                form = await context.form_body(request)
                comment = " ".join(form.get("comment", [""])[0].split())
                if len(comment) > MAX_COMMENT:
                    raise HTTPProblem(
                        400, f"the comment has {len(comment)} characters; at most {MAX_COMMENT}"
                    )
            locale = await run_in_threadpool(record_answer, engine, key, score, comment)
        except HTTPProblem as problem:
            return refused(request, problem.message, problem.status)
        except (TrackingTokenError, OnetomanyError) as exc:
            return refused(request, str(exc), 400)
        lang = language(request, locale)
        words = STRINGS[lang]
        if comment:
            return page(words["nps_title"], f"<p>{esc(words['nps_thanks'])}</p>", lang=lang)
        body = (
            f"<p>{esc(words['nps_recorded'].format(score=score))}</p>"
            f'<form method="post" action="{esc(request.url.path)}">'
            f'<label for="comment">{esc(words["nps_comment"])}</label>'
            f'<textarea id="comment" name="comment" rows="5" cols="50" '
            f'maxlength="{MAX_COMMENT}"></textarea>'
            f'<p><button type="submit">{esc(words["nps_send"])}</button></p></form>'
        )
        return page(words["nps_title"], body, lang=lang)

    return [Route("/nps/{token}", answer, methods=["GET", "POST"])]
