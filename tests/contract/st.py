"""schemathesis's CLI, with one workaround for the Python it runs on.

CPython 3.11 before 3.11.8 can raise ``SystemError: AST constructor recursion
depth mismatch`` from ``ast.parse`` called deep in the stack (CPython issue
gh-106905). Hypothesis calls it there only to *describe* a lambda in a
strategy's repr; such a failure then aborts generation for a whole operation.
A description is not needed to test anything, so it falls back to the one
Hypothesis uses whenever a lambda's source cannot be read.
"""

from __future__ import annotations

import sys

from hypothesis.internal import lambda_sources
from schemathesis.cli import schemathesis

_describe = lambda_sources._lambda_description


def _described(f, *args, **kwargs):
    try:
        return _describe(f, *args, **kwargs)
    except SystemError:
        return "lambda: <unknown>"


lambda_sources._lambda_description = _described

if __name__ == "__main__":
    sys.exit(schemathesis())
