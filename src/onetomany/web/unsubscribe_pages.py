"""One-click unsubscribe (RFC 8058) and the preference page, reached by the signed token of
the ``[unsubscribe]`` links (:mod:`onetomany.rules.unsubscribe`); no login.

=============================  ===========================================================
``POST /unsubscribe/{token}``  RFC 8058: body ``List-Unsubscribe=One-Click``; unsubscribes
                               the token's contact from its topic (every topic without one)
``GET  /unsubscribe/{token}``  a page asking to confirm (a button posting the above): a GET
                               changes nothing, because link scanners fetch every URL
``GET  /preferences/{token}``  the contact's topics and channels, in the contact's language
``POST /preferences/{token}``  the page's form: ``topic=`` and ``channel=`` for each box
                               ticked; the others are unsubscribed
=============================  ===========================================================

Point ``[unsubscribe] url`` at ``https://<host><mount>/unsubscribe/{token}`` and
``preferences_url`` at ``https://<host><mount>/preferences/{token}``. A tampered, truncated,
expired, foreign or retired token is answered 400 with the reason, and nothing changes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

import attrs
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import BaseRoute, Route

from onetomany.engine import Engine
from onetomany.errors import InputError, OnetomanyError
from onetomany.model import ChannelKind
from onetomany.rules.topics import Preferences
from onetomany.rules.unsubscribe import TokenClaims
from onetomany.web.context import HTTPProblem, WebContext
from onetomany.web.page_strings import STRINGS, language
from onetomany.web.pages import esc, page, refused

#: The answer a person records through these pages (kept with each change, for consent).
SOURCE = "link"
ONE_CLICK = ("List-Unsubscribe", "One-Click")


@attrs.frozen
class _Visit:
    """A verified token, the contact's language and the words in it."""

    claims: TokenClaims
    lang: str

    @property
    def words(self) -> dict[str, str]:
        return dict(STRINGS[self.lang])


def _verify(engine: Engine, request: Request) -> _Visit:
    token = request.path_params["token"]
    claims = engine.verify_unsubscribe_token(token)
    contact = engine.store.get_contact(claims.contact_id)
    if contact is None:
        raise InputError(f"contact {claims.contact_id!r} is not in the store")
    return _Visit(claims, language(request, contact.locale))


def channel_kinds(engine: Engine) -> list[ChannelKind]:
    """The kinds of the program's channels a contact may opt out of (not CSM tasks), in the
    order the program lists them."""
    kinds: list[ChannelKind] = []
    for name, settings in engine.program.channels.items():
        plugin = engine.plugins.channels().get(settings.plugin, wanted_by=f"channels.{name}")
        kind = plugin.value.kind_for(settings)
        if kind is not ChannelKind.CSM and kind not in kinds:
            kinds.append(kind)
    return kinds


def channel_on(preferences: Preferences, kind: str) -> bool:
    """Whether the contact takes messages on channel ``kind`` (no answer: yes)."""
    answer = preferences.deciding(None, kind)
    return answer is None or answer.subscribed


def _preference_form(
    visit: _Visit, preferences: Preferences, kinds: Iterable[str], action: str, notice: str = ""
) -> str:
    words = visit.words
    rows = []
    for name, topic in preferences.topics.items():
        label = esc(topic.description or name)
        if topic.transactional:
            rows.append(
                f'<label><input type="checkbox" checked disabled> {label} '
                f'<span class="note">({esc(words["always_sent"])})</span></label>'
            )
        else:
            checked = " checked" if preferences.allows(name) else ""
            rows.append(
                f'<label><input type="checkbox" name="topic" value="{esc(name)}"'
                f"{checked}> {label}</label>"
            )
    channels = []
    for kind in kinds:
        checked = " checked" if channel_on(preferences, kind) else ""
        channels.append(
            f'<label><input type="checkbox" name="channel" value="{esc(kind)}"'
            f"{checked}> {esc(kind)}</label>"
        )
    shown = f'<p role="status">{esc(notice)}</p>' if notice else ""
    return (
        f'{shown}<form method="post" action="{esc(action)}">'
        f'<input type="hidden" name="form" value="preferences">'
        f"<fieldset><legend>{esc(words['topics'])}</legend>{''.join(rows)}</fieldset>"
        f"<fieldset><legend>{esc(words['channels'])}</legend>{''.join(channels)}</fieldset>"
        f'<button type="submit">{esc(words["save"])}</button></form>'
    )


def _apply(
    engine: Engine,
    contact_id: str,
    ticked_topics: set[str],
    ticked_channels: set[str],
    kinds: list[str],
) -> Preferences:
    """Make the contact's answers match the form; every name is checked before anything
    changes, so a bad field changes nothing."""
    preferences = engine.preferences(contact_id)
    optional = {n for n, t in preferences.topics.items() if not t.transactional}
    unknown = sorted(ticked_topics - optional) + sorted(ticked_channels - set(kinds))
    if unknown:
        raise InputError(
            f"the form names {', '.join(repr(u) for u in unknown)}, which the "
            "page does not offer; nothing was changed"
        )
    for kind in kinds:
        wanted = kind in ticked_channels
        if wanted != channel_on(preferences, kind):
            change = engine.resubscribe if wanted else engine.unsubscribe
            change(contact_id, None, kind, source=SOURCE)
    preferences = engine.preferences(contact_id)
    for name in sorted(optional):
        wanted = name in ticked_topics
        if wanted != preferences.allows(name):
            change = engine.resubscribe if wanted else engine.unsubscribe
            change(contact_id, name, source=SOURCE)
    return engine.preferences(contact_id)


def routes(context: WebContext) -> list[BaseRoute]:
    engine = context.engine

    async def guarded(
        request: Request, work: Callable[[], Awaitable[HTMLResponse]]
    ) -> HTMLResponse:
        try:
            return await work()
        except HTTPProblem as problem:
            return refused(request, problem.message, problem.status)
        except OnetomanyError as exc:
            return refused(request, str(exc))

    async def unsubscribe_page(request: Request) -> HTMLResponse:
        async def work() -> HTMLResponse:
            visit = await run_in_threadpool(_verify, engine, request)
            words = visit.words
            topic = visit.claims.topic
            ask = (
                words["unsubscribe_ask_topic"].format(topic=topic)
                if topic
                else words["unsubscribe_ask_all"]
            )
            body = (
                f'<p>{esc(ask)}</p><form method="post" action="{esc(request.url.path)}">'
                f'<input type="hidden" name="{ONE_CLICK[0]}" value="{ONE_CLICK[1]}">'
                f'<button type="submit">{esc(words["unsubscribe_button"])}</button></form>'
            )
            return page(words["unsubscribe_title"], body, lang=visit.lang)

        return await guarded(request, work)

    async def one_click(request: Request) -> HTMLResponse:
        async def work() -> HTMLResponse:
            form = await context.form_body(request)
            if form.get(ONE_CLICK[0]) != [ONE_CLICK[1]]:
                raise HTTPProblem(400, "the body must be List-Unsubscribe=One-Click (RFC 8058)")
            token = request.path_params["token"]
            visit = await run_in_threadpool(_verify, engine, request)
            await run_in_threadpool(engine.unsubscribe_with_token, token, source=SOURCE)
            words = visit.words
            return page(
                words["unsubscribe_title"], f"<p>{esc(words['unsubscribed'])}</p>", lang=visit.lang
            )

        return await guarded(request, work)

    async def preferences_page(request: Request) -> HTMLResponse:
        async def work() -> HTMLResponse:
            visit = await run_in_threadpool(_verify, engine, request)
            contact_id = visit.claims.contact_id
            preferences = await run_in_threadpool(engine.preferences, contact_id)
            kinds = [str(k) for k in await run_in_threadpool(channel_kinds, engine)]
            notice = ""
            if request.method == "POST":
                form = await context.form_body(request)
                if form.get("form") != ["preferences"]:
                    raise HTTPProblem(400, "the body is not the preference page's form")
                preferences = await run_in_threadpool(
                    _apply,
                    engine,
                    contact_id,
                    set(form.get("topic", [])),
                    set(form.get("channel", [])),
                    kinds,
                )
                notice = visit.words["saved"]
            body = _preference_form(visit, preferences, kinds, request.url.path, notice)
            return page(visit.words["preferences_title"], body, lang=visit.lang)

        return await guarded(request, work)

    return [
        Route("/unsubscribe/{token}", unsubscribe_page, methods=["GET"]),
        Route("/unsubscribe/{token}", one_click, methods=["POST"]),
        Route("/preferences/{token}", preferences_page, methods=["GET", "POST"]),
    ]
