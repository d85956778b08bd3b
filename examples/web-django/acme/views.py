"""The host's own views: signup (identify + track) and the widget's token for the user."""

from __future__ import annotations

import json

from django.http import HttpRequest, HttpResponseBadRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from acme.backend import backend


@csrf_exempt  # a JSON API called by the host's own frontend; protect it as the host does
@require_POST
def signup(request: HttpRequest) -> JsonResponse | HttpResponseBadRequest:
    try:
        body = json.loads(request.body)
        backend.signup(
            body["user_id"], name=body["name"], email=body["email"], company=body["company"]
        )
    except (ValueError, KeyError, TypeError):
        return HttpResponseBadRequest("give user_id, name, email and company")
    return JsonResponse({"status": "welcome"})


@require_GET
def inbox_token(request: HttpRequest) -> JsonResponse:
    # X-Demo-User stands in for request.user, which a real project reads from its session.
    user = request.headers.get("X-Demo-User")
    if not user:
        return JsonResponse({"error": "log in first"}, status=401)
    return JsonResponse({"token": backend.inbox_token(user)})
