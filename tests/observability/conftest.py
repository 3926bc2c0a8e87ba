"""Fixtures for what operators see: the log lines the configured handler writes, the metrics /metrics serves."""

import io
import json
import logging
import logging.config
import re

import pytest
from django.conf import settings
from django.test import Client


@pytest.fixture
def log_output(settings):
    """The service's own logging configuration (LOGGING) with the given LOG_FORMAT, its console handler writing into
    a buffer: `lines()` gives what it wrote, parsed when JSON."""

    class Output:
        def __init__(self):
            self.buffer = io.StringIO()

        def configure(self, log_format: str) -> None:
            config = {
                **settings.LOGGING,
                "handlers": {"console": {**settings.LOGGING["handlers"]["console"], "formatter": log_format}},
            }
            logging.config.dictConfig(config)
            [handler] = [h for h in logging.getLogger().handlers if h.name == "console"]
            handler.setStream(self.buffer)

        def text(self) -> str:
            return self.buffer.getvalue()

        def records(self) -> list[dict]:
            return [json.loads(line) for line in self.text().splitlines() if line.strip()]

    output = Output()
    output.configure("json")
    yield output
    logging.config.dictConfig(settings.LOGGING)


class Metrics:
    """Reads /metrics as Prometheus scrapes it (from 127.0.0.1, an allowed network) and picks samples."""

    def __init__(self):
        self.client = Client(REMOTE_ADDR="127.0.0.1")

    def text(self) -> str:
        response = self.client.get("/metrics")
        assert response.status_code == 200, response.content
        return response.content.decode()

    def value(self, name: str, **labels) -> float:
        """The sample's value; 0 when the series is not there yet (a counter not yet incremented)."""
        wanted = {k: str(v) for k, v in labels.items()}
        for line in self.text().splitlines():
            match = re.fullmatch(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)", line)
            if not match or match[1] != name:
                continue
            found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match[2] or ""))
            if all(found.get(k) == v for k, v in wanted.items()):
                return float(match[3])
        return 0.0

    def sum(self, name: str, **labels) -> float:
        wanted = {k: str(v) for k, v in labels.items()}
        total = 0.0
        for line in self.text().splitlines():
            match = re.fullmatch(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)", line)
            if match and match[1] == name:
                found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match[2] or ""))
                if all(found.get(k) == v for k, v in wanted.items()):
                    total += float(match[3])
        return total


@pytest.fixture
def metrics(db):
    return Metrics()


def has_metric_settings() -> bool:
    return hasattr(settings, "METRICS_ALLOWED_NETWORKS")
