"""Runs checkov and bandit and fails on every finding ``security/skips.yaml`` does not list.

A skip names the tool, the check and where it applies (glob patterns over checkov's
``file:resource`` or bandit's ``file``), and says why. A skip that no longer matches any finding
fails too, so the list only ever holds what is still true.

Usage: ``python -m security.check --checkov BIN --bandit BIN --manifests DIR``
"""

from __future__ import annotations

import argparse
import dataclasses
import fnmatch
import json
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SKIPS = ROOT / "security" / "skips.yaml"
PYTHON_PACKAGES = ("textclf", "components", "pipelines", "serving")
BANDIT_SEVERITIES = ("MEDIUM", "HIGH")  # low findings are listed in the report, not gated


@dataclasses.dataclass(frozen=True)
class Finding:
    tool: str  # checkov-kubernetes, checkov-terraform, bandit
    check: str
    where: str  # checkov: file:resource; bandit: file:line
    title: str


@dataclasses.dataclass
class Skip:
    tool: str
    check: str
    where: list[str]
    reason: str
    used: int = 0

    def covers(self, finding: Finding) -> bool:
        return (
            self.tool == finding.tool
            and self.check == finding.check
            and any(fnmatch.fnmatch(finding.where, pattern) for pattern in self.where)
        )


def load_skips(path: Path = SKIPS) -> list[Skip]:
    """The reviewed skips; each needs a tool, a check, where, and a reason of a few words at least."""
    skips = []
    for index, entry in enumerate(yaml.safe_load(path.read_text()) or []):
        missing = [key for key in ("tool", "check", "where", "reason") if not entry.get(key)]
        if missing:
            raise ValueError(f"{path} entry {index + 1} lacks {', '.join(missing)}")
        if len(entry["reason"].split()) < 8:
            raise ValueError(f"{path} entry {index + 1} ({entry['check']}): the reason must say why, in a sentence")
        skips.append(Skip(entry["tool"], entry["check"], list(entry["where"]), entry["reason"]))
    return skips


def checkov_findings(checkov: str, framework: str, directory: Path) -> tuple[list[Finding], dict]:
    """Failed checks and checkov's summary. ``--skip-download``: nothing leaves this machine."""
    out = subprocess.run(
        [
            checkov,
            "-d",
            str(directory),
            "--framework",
            framework,
            "--quiet",
            "--compact",
            "--skip-download",
            "-o",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    if out.returncode not in (0, 1) or not out.stdout.strip():
        raise SystemExit(f"error: checkov {framework} failed ({out.returncode}):\n{out.stderr[-3000:]}")
    reports = json.loads(out.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    findings, summary = [], {"passed": 0, "failed": 0}
    for report in reports:
        for key in summary:
            summary[key] += report["summary"][key]
        for failed in report["results"]["failed_checks"]:
            # The file's name only: the folders are flat, and checkov prefixes paths differently by cwd.
            where = f"{Path(failed['file_path']).name}:{failed['resource']}"
            findings.append(Finding(f"checkov-{framework}", failed["check_id"], where, failed["check_name"]))
    return findings, summary


def bandit_findings(bandit: str) -> tuple[list[Finding], dict]:
    """Medium and high findings (gated) and the count per severity (reported)."""
    out = subprocess.run(
        [bandit, "-r", *PYTHON_PACKAGES, "-f", "json", "-q"], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    if out.returncode not in (0, 1) or not out.stdout.strip():
        raise SystemExit(f"error: bandit failed ({out.returncode}):\n{out.stderr[-3000:]}")
    report = json.loads(out.stdout)
    counts = {level.lower(): report["metrics"]["_totals"][f"SEVERITY.{level}"] for level in ("LOW", "MEDIUM", "HIGH")}
    findings = [
        Finding("bandit", result["test_id"], f"{result['filename']}:{result['line_number']}", result["issue_text"])
        for result in report["results"]
        if result["issue_severity"] in BANDIT_SEVERITIES
    ]
    return findings, counts


def judge(findings: list[Finding], skips: list[Skip]) -> tuple[list[Finding], list[Skip]]:
    """(findings no skip covers, skips that covered nothing)."""
    open_findings = []
    for finding in findings:
        covering = [skip for skip in skips if skip.covers(finding)]
        for skip in covering:
            skip.used += 1
        if not covering:
            open_findings.append(finding)
    return open_findings, [skip for skip in skips if not skip.used]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m security.check", description=__doc__.splitlines()[0])
    parser.add_argument("--checkov", required=True, help="the checkov executable")
    parser.add_argument("--bandit", required=True, help="the bandit executable")
    parser.add_argument("--manifests", required=True, type=Path, help="folder python -m security.render wrote")
    args = parser.parse_args(argv)

    kubernetes, kubernetes_summary = checkov_findings(args.checkov, "kubernetes", args.manifests)
    terraform, terraform_summary = checkov_findings(args.checkov, "terraform", ROOT / "infra")
    python, bandit_counts = bandit_findings(args.bandit)
    skips = load_skips()
    open_findings, stale = judge(kubernetes + terraform + python, skips)

    print(f"checkov kubernetes: {kubernetes_summary['passed']} passed, {kubernetes_summary['failed']} failed")
    print(f"checkov terraform:  {terraform_summary['passed']} passed, {terraform_summary['failed']} failed")
    print(
        f"bandit: {bandit_counts['high']} high, {bandit_counts['medium']} medium, {bandit_counts['low']} low "
        f"(medium and high are gated)"
    )
    for skip in skips:
        print(f"skipped {skip.used:3d} x {skip.tool} {skip.check}: {skip.reason}")
    for finding in open_findings:
        print(f"FAIL {finding.tool} {finding.check} {finding.where}: {finding.title}")
    for skip in stale:
        print(f"FAIL stale skip {skip.tool} {skip.check} {skip.where}: it matches no finding any more; remove it")
    if open_findings or stale:
        print(f"security: {len(open_findings)} finding(s) not in {SKIPS.relative_to(ROOT)}, {len(stale)} stale skip(s)")
        return 1
    print(f"security: no finding outside the {len(skips)} reviewed skips")
    return 0


if __name__ == "__main__":
    sys.exit(main())
