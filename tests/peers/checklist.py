"""The verdict the peer scripts share: count checks, stop at the first failure.
A script ends with checklist.finish(name, main(...)), which prints 'NAME: N checks passed' and
exits 0, or 'NAME: check failed: WHAT' and exits 1; tests/peers_test.cpp reads those lines."""

import sys
from typing import Callable


class Checklist:
    def __init__(self) -> None:
        self.passed = 0

    def expect(self, cond: bool, what: str) -> None:
        if not cond:
            raise AssertionError(what)
        self.passed += 1


def finish(name: str, run: Callable[[Checklist], None]) -> None:
    checks = Checklist()
    try:
        run(checks)
    except AssertionError as e:
        print(f"{name}: check failed: {e}")
        sys.exit(1)
    print(f"{name}: {checks.passed} checks passed")
    sys.exit(0)
