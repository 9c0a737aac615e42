"""A fake Kubernetes API server on loopback with Katib v0.19.0 (and Kubeflow Trainer v2.3.0) installed.

It stands in for a cluster with the Katib controller, which cannot run here. The tune step talks to
it through the real ``kubernetes`` client and the real ``kubeflow`` SDK over real HTTP. It is the
Trainer fake (``fake_trainer_api.py``: the SDK reads the TrainJob runtime from it) plus:

- ``POST .../namespaces/NS/experiments``: the body is checked as tests/fixtures/katib/README.md
  describes (CRD schema, Katib's Go types, its validating webhook's rules, the trial template as a
  TrainJob); a refused body is 422 Invalid, an existing name 409;
- ``GET``/``DELETE .../namespaces/NS/experiments/NAME``: the controller's view, played by a script
  (polls before the end, the outcome, the trials and their metrics);
- ``GET .../namespaces/NS/trials?labelSelector=katib.kubeflow.org/experiment=NAME``.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import jsonschema
import yaml

from tests.cloud.fake_trainer_api import NOW, FakeTrainerApi, schema_errors, trainjob_validator
from tests.rollout.crd import strictify

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "katib"
KATIB = "/apis/kubeflow.org/v1beta1"
PLACEHOLDER = re.compile(r"\$\{trialParameters\.([^}]+)\}")


def experiment_validator() -> jsonschema.Draft7Validator:
    """Katib's Go types (swagger.json) as a JSON schema rooted at v1beta1.Experiment, objects closed."""
    swagger = json.loads((FIXTURES / "swagger.json").read_text())
    definitions = copy.deepcopy(swagger["definitions"])
    for external in (
        "v1.Container",
        "v1.HTTPGetAction",
        "v1.ListMeta",
        "v1.ObjectMeta",
        "v1.unstructured.Unstructured",
    ):
        definitions[external] = {"type": "object"}  # Kubernetes types the file only names: left open
    definitions["v1.Time"] = {"type": "string"}
    schema = {"$ref": "#/definitions/v1beta1.Experiment", "definitions": definitions}
    return jsonschema.Draft7Validator(strictify(schema))


def katib_config() -> dict:
    return yaml.safe_load((FIXTURES / "katib-config.yaml").read_text())


def crd_schema() -> dict:
    crd = yaml.safe_load((FIXTURES / "experiment-crd.yaml").read_text())
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1beta1"]
    return version["schema"]["openAPIV3Schema"]


def _count_rules(spec: dict) -> list[str]:
    errors = []
    most, parallel, failed = spec.get("maxTrialCount"), spec.get("parallelTrialCount"), spec.get("maxFailedTrialCount")
    if failed is not None and failed < 0:
        errors.append("spec.maxFailedTrialCount: should not be less than 0")
    if most is not None and most <= 0:
        errors.append("spec.maxTrialCount: must be greater than 0")
    if parallel is not None and parallel <= 0:
        errors.append("spec.parallelTrialCount: must be greater than 0")
    if most is not None and failed is not None and failed > most:
        errors.append("spec.maxFailedTrialCount: should be less than or equal to spec.maxTrialCount")
    if most is not None and parallel is not None and parallel > most:
        errors.append("spec.parallelTrialCount: should be less than or equal to spec.maxTrialCount")
    return errors


def _objective_and_algorithms(spec: dict, config: dict) -> list[str]:
    errors, objective = [], spec.get("objective") or {}
    if objective.get("type") not in ("minimize", "maximize"):
        errors.append("spec.objective.type: must be minimize or maximize")
    if not objective.get("objectiveMetricName"):
        errors.append("spec.objective.objectiveMetricName: must be specified")
    if objective.get("objectiveMetricName") in (objective.get("additionalMetricNames") or []):
        errors.append("spec.objective.additionalMetricNames: should not contain spec.objective.objectiveMetricName")
    suggestions = {s["algorithmName"] for s in config["runtime"]["suggestions"]}
    if (spec.get("algorithm") or {}).get("algorithmName") not in suggestions:
        errors.append(
            f"spec.algorithm.algorithmName: unable to get Suggestion config data (known: {sorted(suggestions)})"
        )
    stoppings = {s["algorithmName"] for s in config["runtime"]["earlyStoppings"]}
    if spec.get("earlyStopping") and spec["earlyStopping"].get("algorithmName") not in stoppings:
        errors.append(
            f"spec.earlyStopping.algorithmName: unable to get EarlyStopping config data (known: {sorted(stoppings)})"
        )
    if spec.get("resumePolicy", "") not in ("", "Never", "LongRunning", "FromVolume"):
        errors.append("spec.resumePolicy: invalid ResumePolicyType")
    return errors


def _parameter_rules(parameters: list[dict]) -> list[str]:
    errors = []
    if not parameters:
        errors.append("spec: spec.parameters or spec.nasConfig must be specified")
    for i, p in enumerate(parameters):
        kind, space = p.get("parameterType"), p.get("feasibleSpace") or {}
        if kind not in ("int", "double", "categorical", "discrete", ""):
            errors.append(f"spec.parameters[{i}].parameterType: {kind} is not supported")
        if space.get("distribution", "") not in ("", "uniform", "logUniform", "normal", "logNormal"):
            errors.append(f"spec.parameters[{i}].feasibleSpace.distribution: {space['distribution']} is not supported")
        if not space:
            errors.append(f"spec.parameters[{i}].feasibleSpace: feasibleSpace must be specified")
        elif kind in ("int", "double") and (space.get("list") or not space.get("min") or not space.get("max")):
            errors.append(f"spec.parameters[{i}].feasibleSpace: min and max (and no list) for parameterType {kind}")
        elif kind in ("categorical", "discrete") and any(space.get(k) for k in ("min", "max", "step")):
            errors.append(f"spec.parameters[{i}].feasibleSpace: .max, .min and .step are not supported for {kind}")
    return errors


def _template_rules(spec: dict, config: dict) -> list[str]:
    template = spec.get("trialTemplate")
    if not template:
        return ["spec.trialTemplate: must be specified"]
    errors = []
    if not template.get("primaryContainerName"):
        errors.append("spec.trialTemplate.primaryContainerName: must be specified")
    if not template.get("successCondition") or not template.get("failureCondition"):
        errors.append("spec.trialTemplate: successCondition and failureCondition must be specified")
    if template.get("trialParameters") is None or template.get("trialSpec") is None:
        return errors + ["spec.trialTemplate: trialParameters and trialSpec must be specified"]
    names = {p["name"] for p in spec.get("parameters", [])}
    declared = {}
    for i, p in enumerate(template["trialParameters"]):
        if not p.get("name") or not p.get("reference") or "{" in p["name"] or "}" in p["name"]:
            errors.append(f"spec.trialTemplate.trialParameters[{i}]: name and reference must be specified")
        elif p["name"] in declared or p["reference"] in declared.values():
            errors.append(f"spec.trialTemplate.trialParameters[{i}]: name or reference duplicated")
        elif p["reference"] not in names:
            errors.append(
                f"spec.trialTemplate.trialParameters[{i}].reference: {p['reference']} does not exist in spec.parameters"
            )
        declared[p.get("name")] = p.get("reference")
    used = set(PLACEHOLDER.findall(json.dumps(template["trialSpec"])))
    if used != set(declared):
        errors.append(
            f"spec.trialTemplate: placeholders {sorted(used)} do not match trialParameters {sorted(declared)}"
        )
    trial = template["trialSpec"]
    group, _, version = trial.get("apiVersion", "").partition("/")
    kind = f"{trial.get('kind')}.{version}.{group}"
    if kind not in config["init"]["controller"]["trialResources"]:
        errors.append(f"spec.trialTemplate: {kind} is not a trial resource Katib is configured for")
    if trial.get("metadata", {}).get("name") or trial.get("metadata", {}).get("namespace"):
        errors.append("spec.trialTemplate: metadata.name and metadata.namespace in spec.trialTemplate must be omitted")
    return errors


def webhook_errors(body: dict, config: dict) -> list[str]:
    """What Katib v0.19.0's validating webhook says about a new Experiment (validator.go)."""
    name = body.get("metadata", {}).get("name", "")
    errors = (
        []
        if re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", name) and len(name) <= 40
        else [f"metadata.name: {name!r} is invalid"]
    )
    spec = body.get("spec", {})
    return (
        errors
        + _count_rules(spec)
        + _objective_and_algorithms(spec, config)
        + _parameter_rules(spec.get("parameters", []))
        + _template_rules(spec, config)
    )


def filled_trial(body: dict, values: dict[str, str]) -> dict:
    """The trial template with each placeholder replaced: what Katib creates for one trial."""
    text = json.dumps(body["spec"]["trialTemplate"]["trialSpec"])
    return json.loads(PLACEHOLDER.sub(lambda m: values[m.group(1)], text))


def sample_values(body: dict) -> dict[str, str]:
    """One value per parameter (its min, or first choice), as Katib's suggestion would send it."""
    refs = {p["name"]: p["reference"] for p in body["spec"]["trialTemplate"]["trialParameters"]}
    spaces = {p["name"]: p["feasibleSpace"] for p in body["spec"]["parameters"]}
    return {name: (spaces[ref].get("list") or [spaces[ref].get("min")])[0] for name, ref in refs.items()}


@dataclass
class KatibScript:
    """How the fake Katib controller plays the Experiment."""

    running_polls: int = 1  # GETs of the Experiment before it ends
    outcome: str = "Succeeded"  # or "Failed"; "Running" never ends
    # Each trial: (state, {parameter: value as Katib writes it}, objective value or None).
    trials: list[tuple[str, dict, float | None]] = field(default_factory=list)
    best: int = 0  # index of the best trial


class FakeKatibApi(FakeTrainerApi):
    """The Trainer fake plus Katib's Experiments and Trials; ``experiments`` holds what POST accepted."""

    def __init__(self, namespace: str, katib: KatibScript | None = None):
        super().__init__(namespace)
        self.katib = katib or KatibScript()
        self.experiments: dict[str, dict] = {}
        self.experiment_gets = 0
        self.types = experiment_validator()
        self.crd = jsonschema.Draft7Validator(crd_schema())
        self.config = katib_config()
        self.trial_validator = trainjob_validator()

    def experiment_errors(self, body: dict) -> list[str]:
        errors = schema_errors(self.crd, body) + schema_errors(self.types, body) + webhook_errors(body, self.config)
        if not errors:
            trial = filled_trial(body, sample_values(body))
            errors += [f"trialSpec as TrainJob: {e}" for e in schema_errors(self.trial_validator, trial)]
        return errors

    def route(self, h, method: str, path: str, body: dict | None) -> None:
        ns = f"{KATIB}/namespaces/{self.namespace}"
        if path == f"{ns}/experiments" and method == "POST":
            return self.create_experiment(h, body)
        if path.startswith(f"{ns}/experiments/"):
            return self.experiment(h, method, path.rsplit("/", 1)[1])
        if path == f"{ns}/trials" and method == "GET":
            selector = self.calls[-1].query.get("labelSelector", [""])[0]
            name = selector.partition("=")[2]
            items = self.trials(name) if name in self.experiments else []
            return h.send(
                200, {"apiVersion": "kubeflow.org/v1beta1", "kind": "TrialList", "metadata": {}, "items": items}
            )
        return super().route(h, method, path, body)

    def create_experiment(self, h, body: dict) -> None:
        errors = self.experiment_errors(body)
        if errors:
            return h.status(422, "Invalid", f"Experiment.kubeflow.org is invalid: {errors}")
        name = body["metadata"]["name"]
        if name in self.experiments:
            return h.status(409, "AlreadyExists", f"experiments.kubeflow.org {name!r} already exists")
        stored = copy.deepcopy(body)
        stored["metadata"].update(namespace=self.namespace, creationTimestamp=NOW, uid="uid-e", resourceVersion="1")
        self.experiments[name] = stored
        self.created.append(copy.deepcopy(body))
        return h.send(201, stored)

    def experiment(self, h, method: str, name: str) -> None:
        if name not in self.experiments:
            return h.status(404, "NotFound", f"experiments.kubeflow.org {name!r} not found")
        if method == "DELETE":
            self.deleted.append(name)
            del self.experiments[name]
            return h.send(200, {"kind": "Status", "apiVersion": "v1", "status": "Success"})
        self.experiment_gets += 1
        return h.send(200, {**self.experiments[name], "status": self.experiment_status(name)})

    def objective(self, name: str) -> str:
        return self.experiments[name]["spec"]["objective"]["objectiveMetricName"]

    def observation(self, name: str, value: float | None) -> dict:
        if value is None:
            return {}
        return {"metrics": [{"name": self.objective(name), "latest": str(value), "max": str(value), "min": str(value)}]}

    def trials(self, name: str) -> list[dict]:
        items = []
        for i, (state, values, value) in enumerate(self.katib.trials):
            items.append(
                {
                    "apiVersion": "kubeflow.org/v1beta1",
                    "kind": "Trial",
                    "metadata": {
                        "name": f"{name}-trial{i}",
                        "namespace": self.namespace,
                        "creationTimestamp": f"2026-01-01T00:0{i}:00Z",
                        "labels": {"katib.kubeflow.org/experiment": name},
                    },
                    "spec": {"parameterAssignments": [{"name": k, "value": v} for k, v in values.items()]},
                    "status": {
                        "startTime": f"2026-01-01T00:0{i}:00Z",
                        "completionTime": f"2026-01-01T00:0{i}:42Z",
                        "conditions": [{"type": state, "status": "True"}],
                        "observation": self.observation(name, value),
                    },
                }
            )
        return items

    def experiment_status(self, name: str) -> dict:
        if self.experiment_gets <= self.katib.running_polls or self.katib.outcome == "Running":
            return {
                "conditions": [{"type": "Running", "status": "True"}],
                "trials": len(self.katib.trials),
                "trialsRunning": 1,
            }
        status = {
            "conditions": [
                {
                    "type": self.katib.outcome,
                    "status": "True",
                    "message": f"Experiment has {self.katib.outcome.lower()}",
                }
            ],
            "trials": len(self.katib.trials),
            "trialsSucceeded": sum(t[0] == "Succeeded" for t in self.katib.trials),
            "trialsEarlyStopped": sum(t[0] == "EarlyStopped" for t in self.katib.trials),
        }
        if self.katib.trials:
            _, values, value = self.katib.trials[self.katib.best]
            status["currentOptimalTrial"] = {
                "bestTrialName": f"{name}-trial{self.katib.best}",
                "parameterAssignments": [{"name": k, "value": v} for k, v in values.items()],
                "observation": self.observation(name, value),
            }
        return status
