"""The benchmark scripts still run end to end (their figures are not asserted: they are
measurements, recorded in the README)."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_population_eval_prints_both_rates_and_the_speedup():
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "population_eval.py"), "--population", "3",
         "--one-by-one", "1", "--repeats", "1", "--optimizer", "adam"],
        capture_output=True, text=True, timeout=300, check=True).stdout
    lines = out.strip().splitlines()
    assert re.match(r"one by one: +[\d,]+ individual-samples/s", lines[-3])
    assert re.match(r"population: +[\d,]+ individual-samples/s \(chunk size 3; [\d.]+ ms per step",
                    lines[-2])
    assert re.fullmatch(r"speedup: \d+\.\dx", lines[-1])
