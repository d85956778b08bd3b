"""html_to_text: readable plain text out of (MJML-made) HTML."""

from __future__ import annotations

import mjml
import pytest

from onetomany.templating import html_to_text


@pytest.mark.parametrize(
    ("html", "text"),
    [
        ("<p>One</p><p>Two</p>", "One\n\nTwo"),
        ("<p>line<br>break<br/>again</p>", "line\nbreak\nagain"),
        ("<p>  lots \n of\t  space  </p>", "lots of space"),
        ("<p>Hello <b>Ann</b>, <i>welcome</i>!</p>", "Hello Ann, welcome!"),
        ("<p>Tom &amp; Jerry &lt;3 &#8364; &eacute; &nbsp;x</p>", "Tom & Jerry <3 € é x"),
        ('<a href="https://a.test/x">Open</a>', "Open (https://a.test/x)"),
        ('<a href="https://a.test/x">https://a.test/x</a>', "https://a.test/x"),
        ('<a href="mailto:help@acme.test">help@acme.test</a>', "help@acme.test"),
        ('<a href="mailto:help@acme.test">Write us</a>', "Write us (help@acme.test)"),
        ('<a href="#top">Top</a>', "Top"),
        ('<a href="https://a.test"><img src="x.png" alt="Acme"></a>', "Acme (https://a.test)"),
        ('<a href="https://a.test"><img src="x.png"></a>', "https://a.test"),
        ('<p>x</p><img src="pixel.gif" alt="tracking"><p>y</p>', "x\n\ny"),
        ("<ul><li>one</li><li>two</li></ul>", "- one\n- two"),
        ("<h1>Title</h1>Body", "Title\n\nBody"),
        ("<table><tr><td>a</td><td>b</td></tr></table>", "a\nb"),
        ("<head><title>T</title><style>p{}</style></head><body><p>Body</p></body>", "Body"),
        ("<p>a</p><script>alert(1)</script><p>b</p>", "a\n\nb"),
        ("<!--[if mso | IE]><table><tr><td>Outlook only<![endif]--><p>All</p>", "All"),
        ('<div style="display:none;max-height:0">Preview text</div><p>Body</p>', "Body"),
        ('<div style="display: none"><div>nested</div><p>hidden</p></div><p>shown</p>', "shown"),
        ("", ""),
        ("plain text", "plain text"),
    ],
)
def test_html_to_text(html: str, text: str) -> None:
    assert html_to_text(html) == text


def test_mjml_document() -> None:
    html = mjml.mjml2html(
        """<mjml>
          <mj-head><mj-title>Title</mj-title><mj-preview>Preview</mj-preview>
            <mj-style>.x { color: red; }</mj-style></mj-head>
          <mj-body>
            <mj-section><mj-column>
              <mj-text>Hi Ann,<br />thanks for joining.</mj-text>
              <mj-text><p>First paragraph.</p><p>Second &amp; last.</p></mj-text>
              <mj-button href="https://app.acme.test/start">Start now</mj-button>
            </mj-column></mj-section>
            <mj-section>
              <mj-column><mj-text>Left</mj-text></mj-column>
              <mj-column><mj-text>Right</mj-text></mj-column>
            </mj-section>
          </mj-body>
        </mjml>"""
    )

    assert html_to_text(html) == (
        "Hi Ann,\nthanks for joining.\n\n"
        "First paragraph.\n\nSecond & last.\n\n"
        "Start now (https://app.acme.test/start)\n\n"
        "Left\n\nRight"
    )
