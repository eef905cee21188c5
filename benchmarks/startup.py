"""Start-up time of the command line (goals: ``--help`` ≤ 1 s, ``material show ge`` ≤ 2 s).

Each command is a fresh process, timed from start to exit; the reference, ``python -c "import
numpy"`` (the floor any command pays), is timed in the same run, interleaved with the commands
so that a machine busy with other work slows all of them alike. Prints the median of
``--repeats`` runs of each, its ratio to the reference and to the goal.

    .venv/bin/python benchmarks/startup.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

#: label → (arguments after the interpreter, goal in seconds or None for the reference)
COMMANDS: dict[str, tuple[list[str], float | None]] = {
    'python -c "import numpy"': (["-c", "import numpy"], None),
    "fcinvert --help": (["-m", "fcinvert", "--help"], 1.0),
    "fcinvert material show ge": (["-m", "fcinvert", "material", "show", "ge"], 2.0),
}


def wall_time(arguments: list[str]) -> float:
    """Seconds from start to exit of ``python <arguments>`` (output discarded; must succeed)."""
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, *arguments], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    samples: dict[str, list[float]] = {label: [] for label in COMMANDS}
    for arguments, _ in COMMANDS.values():  # warm the file cache
        wall_time(arguments)
    for _ in range(args.repeats):
        for label, (arguments, _) in COMMANDS.items():
            samples[label].append(wall_time(arguments))
    medians = {label: statistics.median(times) for label, times in samples.items()}
    reference = medians['python -c "import numpy"']
    print(f"median of {args.repeats} fresh processes each, interleaved")
    print(f"{'command':<28} {'median s':>9} {'min–max s':>12} {'× numpy':>8} {'goal s':>7}")
    for label, (_, goal) in COMMANDS.items():
        spread = f"{min(samples[label]):.2f}–{max(samples[label]):.2f}"
        verdict = (
            "" if goal is None else f"{goal:>7.1f} {'met' if medians[label] <= goal else 'MISSED'}"
        )
        print(
            f"{label:<28} {medians[label]:>9.2f} {spread:>12} "
            f"{medians[label] / reference:>8.1f} {verdict}"
        )


if __name__ == "__main__":
    main()
