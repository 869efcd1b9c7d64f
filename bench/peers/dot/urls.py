"""DOT's own views: ``/o/token/`` and ``/o/introspect/``; ``/healthz`` for the bench."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.urls import path
from oauth2_provider import views


def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


urlpatterns = [
    path("o/token/", views.TokenView.as_view()),
    path("o/introspect/", views.IntrospectTokenView.as_view()),
    path("healthz", healthz),
]
