from __future__ import annotations

from django.urls import path

from acme import views

urlpatterns = [
    path("signup", views.signup),
    path("api/inbox-token", views.inbox_token),
]
