"""`make chaos` (`python -m tests.chaos`): the adversary's chaos run as a repeatable script. Not part of `make test`
(it takes minutes): no module here is named test_*.py, so pytest never collects it."""
