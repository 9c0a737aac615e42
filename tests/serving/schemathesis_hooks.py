"""Schemathesis hooks for tests/serving/test_serving_openapi.py (loaded through SCHEMATHESIS_HOOKS).

JSON Schema cannot say that a V2 input's ``shape`` is ``[len(data)]``; a generated valid request
gets that one fact made true, so that "valid" means what the protocol means by it.
"""

import schemathesis


@schemathesis.hook
def map_case(context, case):
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive or not isinstance(case.body, dict):
        return case
    for tensor in case.body.get("inputs") or ():
        if isinstance(tensor, dict) and isinstance(tensor.get("data"), list) and isinstance(tensor.get("shape"), list):
            tensor["shape"] = [len(tensor["data"])]
    return case
