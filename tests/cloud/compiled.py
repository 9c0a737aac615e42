"""What a compiled pipeline's task is given at run time, read from the compiled YAML itself."""

import re

PLACEHOLDER = re.compile(r"\{\{\$\.inputs\.parameters\['pipelinechannel--(\w+)'\]\}\}")


def task_inputs(spec: dict, task: str, overrides: dict | None = None) -> dict:
    """The parameter values the compiled task gets when the run takes the pipeline's defaults (and
    ``overrides``): pipeline parameters, constants, and f-strings of pipeline parameters filled in
    (the outputs of other tasks are left to the caller)."""
    root = spec["root"]
    values = {name: d.get("defaultValue") for name, d in root["inputDefinitions"]["parameters"].items()}
    values.update(overrides or {})
    declared = spec["components"][root["dag"]["tasks"][task]["componentRef"]["name"]]["inputDefinitions"]["parameters"]
    # As kfp's executor does (YAML gives integers as floats).
    cast = {"NUMBER_INTEGER": int, "NUMBER_DOUBLE": float, "BOOLEAN": bool, "STRING": str, "LIST": list, "STRUCT": dict}
    inputs = {}
    for name, source in root["dag"]["tasks"][task]["inputs"]["parameters"].items():
        if name.startswith("pipelinechannel--") or "taskOutputParameter" in source:
            continue
        if "componentInputParameter" in source:
            value = values[source["componentInputParameter"]]
        else:
            constant = source["runtimeValue"]["constant"]
            value = (
                PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), constant) if isinstance(constant, str) else constant
            )
        inputs[name] = cast[declared[name]["parameterType"]](value)
    return inputs
