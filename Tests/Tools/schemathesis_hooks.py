"""schemathesis hooks for Tests/Tools/schemathesis.sh (loaded through SCHEMATHESIS_HOOKS)."""
import re

import schemathesis

VALID_WAIT = re.compile(r"^[0-9]+(\.[0-9]*)?$")


@schemathesis.hook
def map_case(context, case):
    # The change feed's `wait` holds a request on an empty feed for up to 60 s, past the run's
    # request timeout. A valid wait longer than 2 s is cut to 2 s; anything the server must
    # refuse (negative, past 60, exponents, text) is left as generated.
    if case.operation.path.endswith("/changes") and case.query and "wait" in case.query:
        value = case.query["wait"]
        if isinstance(value, bool):
            return case
        text = str(value) if isinstance(value, (int, float, str)) else ""
        if VALID_WAIT.match(text) and 2 < float(text) <= 60:
            case.query["wait"] = 2
    return case
