"""bench/load.py: the figures every benchmark reports (requests, seconds, rps, p50, p99, statuses), one definition."""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from bench.load import percentile, run, summary


def test_p50_and_p99_are_read_the_same_way_from_the_sorted_values():
    latencies = [0.004, 0.001, 0.003, 0.002]  # unsorted, as threads append them

    # Element int(len * fraction) of the sorted list: for an even count, p50 is the upper middle value.
    assert percentile(latencies, 0.5) == 0.003
    assert percentile(latencies, 0.99) == 0.004
    assert percentile(list(range(1, 101)), 0.99) == 100  # never past the last value


def test_summary_holds_the_keys_the_result_file_and_compare_read():
    figures = summary([0.002, 0.001], {404: 1, 200: 1}, seconds=0.5)

    assert figures == {
        "requests": 2,
        "seconds": 0.5,
        "rps": 4.0,
        "p50_ms": 2.0,
        "p99_ms": 2.0,
        "statuses": {"200": 1, "404": 1},
    }


def test_a_load_counts_every_request_and_each_status():
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            status = 200 if self.path == "/ok" else 404
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/ok"
        figures = run(url, "GET", None, requests=30, concurrency=3, paths=["/ok", "/ok", "/missing"])
    finally:
        server.shutdown()
        server.server_close()

    assert figures["requests"] == 30
    assert figures["statuses"] == {"200": 20, "404": 10}
    assert figures["rps"] == 30 / figures["seconds"]
    assert 0 < figures["p50_ms"] <= figures["p99_ms"]
