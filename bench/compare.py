"""Two benchmark result files side by side: every figure both hold, with the ratio after / before.

    python -m bench.compare artifacts/bench-before.json artifacts/bench.json

Reads what `bench/run.py` (BENCH_RESULT_FILE) and `python -m bench.backoffice --json PATH` write: any JSON whose leaves
are numbers. A figure only one file holds is listed at the end; text and lists (HTTP status counts) are left out. The
ratio only says which way a figure moved: whether higher is better depends on the figure (req/s up, ms down)."""

import json
import sys
from pathlib import Path


def figures(document, prefix: str = "") -> dict[str, float]:
    """The numeric leaves of a JSON document, keyed by their path ("endpoints / GET /api/health/ / rps")."""
    found = {}
    if isinstance(document, dict):
        for key, value in document.items():
            found |= figures(value, f"{prefix} / {key}" if prefix else str(key))
    elif isinstance(document, int | float) and not isinstance(document, bool):
        found[prefix] = float(document)
    return found


def comparison(before: dict[str, float], after: dict[str, float]) -> list[tuple[str, float, float, float | None]]:
    """(figure, before, after, after / before) for each figure in both, in the after file's order."""
    rows = []
    for name, value in after.items():
        if name in before:
            ratio = value / before[name] if before[name] else None
            rows.append((name, before[name], value, ratio))
    return rows


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    before, after = (figures(json.loads(Path(path).read_text())) for path in argv)
    rows = comparison(before, after)
    width = max((len(name) for name, *_ in rows), default=10)
    print(f"{'figure':{width}} {'before':>12} {'after':>12} {'after/before':>13}")
    for name, old, new, ratio in rows:
        print(f"{name:{width}} {old:12.2f} {new:12.2f} {f'{ratio:.2f}x' if ratio is not None else '-':>13}")
    only = sorted(set(before) ^ set(after))
    if only:
        print("\nin one file only:")
        for name in only:
            print(f"  {name} ({'before' if name in before else 'after'})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
