"""The words of the pages a person opens from an email (unsubscribe, preferences, NPS), in a
few languages, and how a request picks one: the contact's locale, else the browser's
``Accept-Language``, else English."""

from __future__ import annotations

from collections.abc import Mapping

from starlette.requests import Request

STRINGS: Mapping[str, Mapping[str, str]] = {
    "en": {
        "unsubscribe_title": "Unsubscribe",
        "unsubscribe_ask_topic": "Stop receiving “{topic}” emails?",
        "unsubscribe_ask_all": "Stop receiving our emails?",
        "unsubscribe_button": "Unsubscribe",
        "unsubscribed": "You are unsubscribed. It can take a moment to reach every queue.",
        "preferences_title": "Your email preferences",
        "topics": "Topics",
        "channels": "Channels",
        "always_sent": "always sent (about your account)",
        "save": "Save",
        "saved": "Your preferences are saved.",
        "refused": "This link cannot be used",
        "manage": "Manage all preferences",
        "nps_title": "Thank you!",
        "nps_recorded": "Your score of {score} is recorded.",
        "nps_comment": "Anything you would like to tell us?",
        "nps_send": "Send",
        "nps_thanks": "Thank you for your comment.",
    },
    "pt": {
        "unsubscribe_title": "Cancelar inscrição",
        "unsubscribe_ask_topic": "Deixar de receber os emails “{topic}”?",
        "unsubscribe_ask_all": "Deixar de receber nossos emails?",
        "unsubscribe_button": "Cancelar inscrição",
        "unsubscribed": "Sua inscrição foi cancelada.",
        "preferences_title": "Suas preferências de email",
        "topics": "Assuntos",
        "channels": "Canais",
        "always_sent": "sempre enviados (sobre sua conta)",
        "save": "Salvar",
        "saved": "Suas preferências foram salvas.",
        "refused": "Este link não pode ser usado",
        "manage": "Gerenciar todas as preferências",
        "nps_title": "Obrigado!",
        "nps_recorded": "Sua nota {score} foi registrada.",
        "nps_comment": "Algo que queira nos contar?",
        "nps_send": "Enviar",
        "nps_thanks": "Obrigado pelo seu comentário.",
    },
    "de": {
        "unsubscribe_title": "Abmelden",
        "unsubscribe_ask_topic": "Keine E-Mails zu „{topic}“ mehr erhalten?",
        "unsubscribe_ask_all": "Keine E-Mails mehr von uns erhalten?",
        "unsubscribe_button": "Abmelden",
        "unsubscribed": "Sie sind abgemeldet.",
        "preferences_title": "Ihre E-Mail-Einstellungen",
        "topics": "Themen",
        "channels": "Kanäle",
        "always_sent": "immer gesendet (zu Ihrem Konto)",
        "save": "Speichern",
        "saved": "Ihre Einstellungen sind gespeichert.",
        "refused": "Dieser Link kann nicht verwendet werden",
        "manage": "Alle Einstellungen verwalten",
        "nps_title": "Danke!",
        "nps_recorded": "Ihre Bewertung {score} ist gespeichert.",
        "nps_comment": "Möchten Sie uns noch etwas sagen?",
        "nps_send": "Senden",
        "nps_thanks": "Danke für Ihren Kommentar.",
    },
}


def language(request: Request, contact_locale: str | None) -> str:
    """The language of :data:`STRINGS` to answer in."""
    wanted = [contact_locale or ""]
    for part in request.headers.get("accept-language", "").split(","):
        wanted.append(part.split(";")[0].strip())
    for locale in wanted:
        code = locale.replace("_", "-").split("-")[0].lower()
        if code in STRINGS:
            return code
    return "en"
