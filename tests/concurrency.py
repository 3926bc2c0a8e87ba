"""Run one callable from many threads released at the same instant, as concurrent requests or deliveries would."""

import threading

from django.db import connection


def run_at_once(action, times: int) -> tuple[list, list[Exception]]:
    """Call `action()` from `times` threads started together; (results, errors). Each thread closes its own
    database connection, so the test database can be dropped afterwards."""
    barrier = threading.Barrier(times)
    results, errors = [], []

    def call():
        try:
            barrier.wait()
            results.append(action())
        except Exception as error:  # collected for the test to assert on
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=call) for _ in range(times)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results, errors
