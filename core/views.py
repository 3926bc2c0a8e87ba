"""Operational endpoints: liveness, readiness, and JSON error pages for the API paths."""

import sys

from django.db import connection
from django.http import JsonResponse
from django.views import defaults
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from core.exceptions import database_error_is_transient, database_unavailable_response, error_body
from core.observability.readiness import readiness_check


class HealthApi(APIView):
    """Answers 200 when the database answers; load balancers and docker-compose poll it."""

    @extend_schema(
        responses={
            200: inline_serializer("Health", {"status": serializers.CharField(), "database": serializers.CharField()}),
            503: inline_serializer(
                "HealthDown", {"status": serializers.CharField(), "database": serializers.CharField()}
            ),
        }
    )
    def get(self, request):
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
                cursor.fetchone()
        except Exception:  # any database failure means "not healthy", never a traceback
            return Response({"status": "unavailable", "database": "unreachable"}, status=503)
        return Response({"status": "ok", "database": "ok"})


class ReadinessApi(APIView):
    """Answers 200 when the database, Redis (the cache) and the Celery broker all answer, else 503 naming which did
    not; within 2 s either way. Liveness (/api/health/) stays the database alone: a Redis outage makes an instance
    unready, which should take it out of a load balancer, not get it restarted."""

    _results = inline_serializer(
        "ReadinessChecks",
        {
            "database": serializers.CharField(help_text="ok, or failed: <error type>, or timeout"),
            "redis": serializers.CharField(help_text="ok, not used (no REDIS_URL), failed: <error type>, or timeout"),
            "broker": serializers.CharField(
                help_text="ok, not used (tasks in-process), failed: <error type>, or timeout"
            ),
        },
    )

    @extend_schema(
        responses={
            200: inline_serializer("Ready", {"status": serializers.CharField(), "checks": _results}),
            503: inline_serializer("NotReady", {"status": serializers.CharField(), "checks": _results}),
        }
    )
    def get(self, request):
        ready, checks = readiness_check()
        return Response({"status": "ok" if ready else "unavailable", "checks": checks}, status=200 if ready else 503)


def json_not_found(request, exception=None):
    if not request.path.startswith("/api/"):
        return defaults.page_not_found(request, exception)
    return JsonResponse(error_body("Not found.", "not_found"), status=404)


def api_not_found(request):
    return JsonResponse(error_body("Not found.", "not_found"), status=404)


def json_server_error(request):
    # Called while the exception is being handled: a transient database error (raised outside a view, e.g. while
    # saving the session) is still a 503 with a retry hint.
    error = sys.exc_info()[1]
    if error is not None and database_error_is_transient(error):
        return database_unavailable_response(request, error)
    if not request.path.startswith("/api/"):
        return defaults.server_error(request)
    return JsonResponse(error_body("Something went wrong on our side. Please try again.", "internal_error"), status=500)
