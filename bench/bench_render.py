"""Templates: the per-recipient cost of rendering an email (HTML + text + subject).

For each bundled template of examples/onboarding (every locale variant) and for a synthetic
~20 KB newsletter, times per recipient, each with a fresh context (a different name per
recipient):

* bare   one render of the compiled HTML by Jinja as it comes (its immutable sandbox with
         StrictUndefined and autoescape, as the SDK's templates need): the floor the issue
         names (MJML compiled once, no text)
* html   the same HTML rendered by the SDK's own environment (``compiled.body``), which looks
         up names in dict contexts without Jinja's attribute-first detour
* html+subject  the HTML, subject and preheader, without the text
* full   ``CompiledTemplate.render``: HTML, subject, preheader and the text through the
         text template derived once per template version
* send   ``TemplateSet.render``, what a send calls: ``full`` plus resolving the variant and
         loading the compiled template (kept between checks for edits), the locale and
         ``lang``, the touch's stand-in fields
* parsed the same as full with the text parsed from each rendered HTML (``html_to_text``)
* mjml   Jinja on the MJML source, then MJML per recipient (what compiling once avoids)

and prints the ratios against bare (and full/html: what the text and subject add to the SDK's
own HTML render), and the text alone (derived vs parsed).

    .venv/bin/python bench/bench_render.py [--repeat 300] [--only welcome newsletter]
"""

from __future__ import annotations

import argparse
import itertools
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import mjml
from jinja2 import StrictUndefined
from jinja2.sandbox import ImmutableSandboxedEnvironment

from onetomany.templating import TemplateSet, html_to_text
from onetomany.templating.locales import locale_filters

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "onboarding" / "templates"
CONSTANTS = {"product": "Acme Analytics", "help_url": "https://help.acme-analytics.test"}

_ITEM = """
    <mj-section background-color="#ffffff" padding="12px 24px">
      <mj-column width="30%">
        <mj-image src="https://cdn.acme-analytics.test/tips/{n}.png" alt="Tip {n}"
          href="https://app.acme-analytics.test/tips/{n}?c={{{{ contact.id }}}}" />
      </mj-column>
      <mj-column width="70%">
        <mj-text font-size="16px" line-height="24px">
          <h3>Tip {n}: make {{{{ account.name }}}} dashboards faster</h3>
          {{{{ contact.first_name }}}}, teams on the {{{{ account.traits.plan }}}} plan who pin
          their top reports save about {{{{ account.traits.seats }}}} minutes a week. Pin a
          report from its menu, then reorder the pins by dragging them.
          <a href="https://help.acme-analytics.test/tips/{n}">Read the guide</a>.
        </mj-text>
        <mj-button href="https://app.acme-analytics.test/tips/{n}/try?c={{{{ contact.id }}}}">
          Try it now</mj-button>
      </mj-column>
    </mj-section>"""

NEWSLETTER = (
    """+++
subject = "Five tips for {{ account.name }}, {{ contact.first_name }}"
preheader = "Small changes, big savings"
+++
<mjml>
  <mj-head>
    <mj-attributes><mj-all font-family="Helvetica, Arial, sans-serif" /></mj-attributes>
    <mj-preview>Small changes, big savings</mj-preview>
  </mj-head>
  <mj-body background-color="#f3f4f6">
    <mj-include path="partials/header.mjml" />"""
    + "".join(_ITEM.format(n=n) for n in range(1, 9))
    + """
    <mj-include path="partials/footer.mjml" />
  </mj-body>
</mjml>
"""
)


def context(i: int) -> dict[str, Any]:
    return {
        "contact": {
            "id": f"ct-{i}",
            "name": f"Person {i} Example",
            "first_name": f"Person{i}",
            "email": f"person{i}@example.test",
            "phone": f"+1555000{i:04d}",
            "role": "admin",
            "locale": "en",
            "timezone": "UTC",
        },
        "account": {
            "id": f"acc-{i}",
            "name": f"Company {i} & Sons",
            "traits": {
                "plan": "pro",
                "seats": 10 + i % 40,
                "active_users": 3 + i % 7,
                "mrr": 1200 + i,
            },
        },
        "touch": {"name": "bench", "key": f"k{i}"},
        "event": {
            "occurred_at": "2026-11-03T01:00:00+00:00",
            "properties": {
                "day": 1 + i % 5,
                "completed": "two data sources and a dashboard",
                "next_step": "invite your analysts",
                "report_id": f"r{i}",
                "title": f"Weekly revenue {i}",
            },
        },
        "program": {"name": "acme-onboarding", "constants": CONSTANTS},
        # What a cadence touch (day_recap) gets: its occurrence and the day's activity.
        "occurrence": {
            "at": "2026-11-03T09:00:00+00:00",
            "number": 1 + i % 5,
            "since": "2026-11-02T09:00:00+00:00",
        },
        "activity": [
            {"id": f"ev-{i}-{n}", "name": name, "occurred_at": "2026-11-03T01:00:00+00:00"}
            for n, name in enumerate(("integration_connected", "login", "report_created"))
        ],
        "unsubscribe_url": f"https://app.acme-analytics.test/unsubscribe?c=ct-{i}",
        # The example sets [tracking]: its NPS survey's links are signed nps_url(score)s.
        "nps_url": lambda score: f"https://app.acme-analytics.test/onetomany/nps/{i}.{score}",
        "locale": "en",
        "timezone": "UTC",
    }


def per_call(*functions: Callable[[dict[str, Any]], object], repeat: int) -> list[float]:
    """Seconds per call of each function, best of 9 batches of ``repeat`` recipients. The
    functions take turns batch by batch, so a stretch of interference on the shared machine
    hits them alike and the ratios between them hold."""
    contexts = [context(i) for i in range(repeat)]
    for function in functions:
        for warm in range(20):
            function(context(10**6 + warm))  # other recipients: no cache may help the timed ones
    best = [float("inf")] * len(functions)
    # CPU time of this process: on a shared machine, wall time also counts other guests' turns.
    for _ in range(9):
        for index, function in enumerate(functions):
            start = time.process_time()
            for each in contexts:
                function(each)
            best[index] = min(best[index], (time.process_time() - start) / repeat)
    return best


def bench(folder: Path, variant: str, repeat: int, *, mjml_repeat: int) -> None:
    templates = TemplateSet(folder, constants={})
    compiled = templates.compiled(variant)
    parsed = attrs.evolve(compiled, derived=None)  # the text parsed from every HTML
    html_size = len(compiled.body.render(context(0)).encode())
    env = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=True)
    env.filters.update(locale_filters())
    assert compiled.compiled_html is not None, variant
    stock = env.from_string(compiled.compiled_html)
    assert stock.render(context(0)) == compiled.body.render(context(0)), variant
    name, *parts = variant.split(".")
    locale, persona = next(
        (locale, persona)
        for locale, persona in itertools.product([None, *parts[-1:]], [None, *parts[:1]])
        if templates.resolve(name, locale=locale, persona=persona) == variant
    )

    def html_and_fields(ctx: dict[str, Any]) -> None:
        compiled.body.render(ctx)
        compiled._field("subject", ctx)
        compiled._field("preheader", ctx)

    def send(ctx: dict[str, Any]) -> None:
        templates.render(name, ctx, locale=locale, persona=persona)

    bare, html, html_only, full, sent, full_parsed = per_call(
        stock.render,
        compiled.body.render,
        html_and_fields,
        compiled.render,
        send,
        parsed.render,
        repeat=repeat,
    )
    htmls = {c["contact"]["id"]: compiled.body.render(c) for c in map(context, range(repeat))}

    def html_of(ctx: dict[str, Any]) -> str:
        return htmls.get(ctx["contact"]["id"]) or compiled.body.render(ctx)

    text_parsed, text_derived = per_call(
        lambda ctx: html_to_text(html_of(ctx)),
        lambda ctx: compiled.derived_text(ctx, html_of(ctx)),
        repeat=repeat,
    )
    source = (folder / f"{variant}.mjml").read_text().split("+++\n", 2)[2]
    body = env.from_string(source)

    partials: dict[str, Any] = {}

    def per_recipient_mjml(ctx: dict[str, Any]) -> str:
        def load(path: str) -> str:
            if path not in partials:  # Jinja compiles once; only MJML runs per recipient
                partials[path] = env.from_string((folder / path).read_text())
            return str(partials[path].render(ctx))

        return mjml.mjml2html(body.render(ctx), include_loader=load)

    (per_mjml,) = per_call(per_recipient_mjml, repeat=mjml_repeat)
    ms = 1000
    print(
        f"{variant:<22} {html_size / 1024:5.1f} KB  bare {bare * ms:6.3f} ms  "
        f"html {html * ms:6.3f} ms ({html / bare:4.2f}x)  "
        f"html+subject {html_only * ms:6.3f} ms ({html_only / bare:4.2f}x)  "
        f"full {full * ms:6.3f} ms ({full / bare:4.2f}x; {full / html:4.2f}x html)  "
        f"send {sent * ms:6.3f} ms ({sent / bare:4.2f}x)  "
        f"parsed {full_parsed * ms:6.3f} ms ({full_parsed / bare:4.2f}x)  "
        f"text derived {text_derived * ms:6.3f} / parsed {text_parsed * ms:6.3f} ms  "
        f"mjml/recipient {per_mjml * ms:7.2f} ms ({per_mjml / bare:5.0f}x)"
        + ("" if compiled.derived else f"  [no derived text: {compiled.derived_reason}]")
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=300)
    parser.add_argument("--only", nargs="*", help="template variants to run (default: all)")
    args = parser.parse_args()
    print("per recipient; full = HTML + subject + preheader + text (derived text template)")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "templates"
        shutil.copytree(EXAMPLE, folder)
        (folder / "newsletter.mjml").write_text(NEWSLETTER)
        templates = TemplateSet(folder, constants={})
        for name in templates.names():
            for variant in templates.variants(name):
                if args.only and variant not in args.only:
                    continue
                bench(folder, variant, args.repeat, mjml_repeat=max(10, args.repeat // 10))


if __name__ == "__main__":
    main()
