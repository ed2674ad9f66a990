"""Workflow lint: actionlint (with shellcheck) and zizmor pass, and unsafe patterns are refused."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    path = shutil.which(name, path=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    if path is None:
        pytest.fail(f"{name} is not installed: run `make install` (it is in requirements.lock)")
    return path


def test_there_are_workflows() -> None:
    assert any(p.name == "ci.yml" for p in WORKFLOWS)


def test_actionlint_with_shellcheck() -> None:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    _tool("shellcheck")
    proc = subprocess.run(
        [_tool("actionlint"), *map(str, WORKFLOWS)],
        capture_output=True, text=True, env=env, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_zizmor_default_policy() -> None:
    proc = subprocess.run(
        [_tool("zizmor"), "--offline", "--no-progress", *map(str, WORKFLOWS)],
        capture_output=True, text=True, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_zizmor_pedantic_has_no_finding_and_every_ignore_says_why() -> None:
    """The pedantic persona (code smells too) finds nothing; what an inline comment ignores
    carries its reason on the same line."""
    proc = subprocess.run(
        [_tool("zizmor"), "--offline", "--no-progress", "--persona", "pedantic", *map(str, WORKFLOWS)],
        capture_output=True, text=True, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "No findings to report" in proc.stdout + proc.stderr
    for path in WORKFLOWS:
        for line in path.read_text().splitlines():
            if "zizmor: ignore[" in line:
                reason = line.split("zizmor: ignore[", 1)[1].split("]", 1)[1].strip()
                assert len(reason.split()) >= 3, f"{path.name}: an ignore without a reason: {line}"


def _auditor(*paths: Path) -> list[dict]:
    """zizmor's auditor persona (false positives allowed) as JSON, inline ignores not honoured."""
    proc = subprocess.run(
        [_tool("zizmor"), "--offline", "--no-progress", "--persona", "auditor", "--no-ignores",
         "--format", "json", *map(str, paths)],
        capture_output=True, text=True, cwd=paths[0].parent,
    )  # fmt: skip
    assert proc.returncode in (0, 11, 12, 13, 14), proc.stderr  # 1x: findings of some severity
    return json.loads(proc.stdout)


def _where(finding: dict) -> tuple[str, str, str]:
    """(audit, file name, the flagged text) of a zizmor JSON finding."""
    (primary,) = [loc for loc in finding["locations"] if loc["symbolic"]["kind"] == "Primary"]
    path = primary["symbolic"]["key"]["Local"]["verbatim_path"]
    return finding["ident"], Path(path).name, primary["concrete"]["feature"]


def test_zizmor_auditor_finds_no_secret_outside_an_environment() -> None:
    """No secret is read by a job without a deployment environment; what the auditor still
    reports, ignores set aside, is the one finding the workflows exist for: pr-comment.yml's
    workflow_run trigger (its safeguards are listed at its top)."""
    found = [_where(f) for f in _auditor(*WORKFLOWS)]
    assert [f for f in found if f[0] == "secrets-outside-env"] == []
    assert [(ident, name) for ident, name, _ in found] == [("dangerous-triggers", "pr-comment.yml")]


def test_zizmor_auditor_flags_the_registry_secrets_without_the_environment(
    tmp_path: Path,
) -> None:
    """The audit above can fail: promote.yml without its environment exposes every credential."""
    text = (ROOT / ".github" / "workflows" / "promote.yml").read_text()
    line = next(x for x in text.splitlines() if x.strip().startswith("environment: production"))
    stripped = tmp_path / "promote.yml"
    stripped.write_text(text.replace(line + "\n", ""))
    flagged = {
        feature for ident, _, feature in map(_where, _auditor(stripped))
        if ident == "secrets-outside-env"
    }  # fmt: skip
    assert {f"secrets.{k}" for k in (*MLFLOW_SECRETS, "AWS_SECRET_ACCESS_KEY")} <= flagged


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_no_unsafe_patterns(path: Path) -> None:
    text = path.read_text()
    doc = yaml.safe_load(text)
    assert "write-all" not in text
    assert "pull_request_target" not in text
    assert "permissions" in doc, "set workflow-level permissions explicitly"
    for job in doc["jobs"].values():
        assert "timeout-minutes" in job, "every job needs a timeout"
        for step in job.get("steps", []):
            uses = step.get("uses")
            if uses and not uses.startswith("./"):
                assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", uses), f"unpinned: {uses}"
            run = step.get("run", "")
            assert "${{ github.event." not in run, f"expression expanded in a script: {run!r}"


# -- what the workflows share -------------------------------------------------------------------

MLFLOW_SECRETS = (
    "MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
)  # fmt: skip


def _load(name: str) -> dict:
    return yaml.safe_load((ROOT / ".github" / "workflows" / name).read_text())


def _secrets_read(doc: dict) -> set[str]:
    return set(re.findall(r"secrets\.(\w+)", yaml.safe_dump(doc)))


def test_only_promote_on_the_default_branch_gets_the_registry_credentials() -> None:
    """The registry's URI and credentials are secrets of the `production` environment; only
    promote.yml's job runs in it, only from the default branch, and only its two registry
    steps see them (not the third-party actions)."""
    for path in WORKFLOWS:
        if path.name != "promote.yml":
            assert not _secrets_read(_load(path.name)) & set(MLFLOW_SECRETS), path.name
    (job,) = _load("promote.yml")["jobs"].values()
    assert job["environment"] == "production"
    assert job["if"] == "github.ref_name == github.event.repository.default_branch"
    assert not set(job["env"]) & set(MLFLOW_SECRETS)
    with_registry = [s["name"] for s in job["steps"] if set(s.get("env", {})) & set(MLFLOW_SECRETS)]
    assert with_registry == ["Promote", "Verify"]
    for name in with_registry:
        env = next(s for s in job["steps"] if s.get("name") == name)["env"]
        assert {k: env[k] for k in MLFLOW_SECRETS} == {
            k: f"${{{{ secrets.{k} }}}}" for k in MLFLOW_SECRETS
        }


@pytest.mark.parametrize(("name", "job_id"), [("pr.yml", None), ("monitor.yml", "drift")])
def test_pull_requests_and_retraining_log_to_the_experiments_store(
    name: str, job_id: str | None
) -> None:
    """A variable, never a secret: empty means the local sqlite store (tests/integration/test_act.py
    runs pr.yml both ways)."""
    jobs = _load(name)["jobs"]
    job = jobs[job_id] if job_id else next(iter(jobs.values()))
    assert job_id or len(jobs) == 1
    assert job["env"]["MLFLOW_TRACKING_URI"] == "${{ vars.MLFLOW_EXPERIMENTS_URI }}"
    text = yaml.safe_dump(job)
    for key in MLFLOW_SECRETS[1:]:
        assert key not in text, (name, key)


def test_pull_requests_read_no_secret_and_retraining_reads_its_environments() -> None:
    """pr.yml runs the PR's code: a secret there is readable by every branch's code."""
    assert _secrets_read(_load("pr.yml")) == set()
    jobs = _load("monitor.yml")["jobs"]
    assert jobs["drift"]["environment"] == "retrain"  # RETRAIN_TOKEN, the DVC write keys
    assert _secrets_read(jobs["drift"]) == {
        "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "RETRAIN_TOKEN",
    }  # fmt: skip
    assert _secrets_read(jobs["model-age"]) == set(MLFLOW_READ_SECRETS)


MLFLOW_READ_SECRETS = ("MLFLOW_READ_URI", "MLFLOW_READ_TOKEN", "MLFLOW_READ_USERNAME",
                       "MLFLOW_READ_PASSWORD")  # fmt: skip


def test_the_model_age_check_reads_the_registry_with_its_own_read_credentials() -> None:
    """The daily age check runs in the `registry-read` environment, apart from the retrain
    job's write credentials and promote.yml's; only its verify step sees the registry's read
    credentials, handed to MLflow under its own variable names, and the job can write nothing."""
    jobs = _load("monitor.yml")["jobs"]
    job = jobs["model-age"]
    assert job["environment"] == "registry-read"
    assert job["if"] == jobs["drift"]["if"]  # scheduled, or by hand on the default branch
    assert job["permissions"] == {"contents": "read"}
    assert "env" not in job or not set(job["env"]) & set(MLFLOW_SECRETS)
    with_registry = [s for s in job["steps"] if set(s.get("env", {})) & set(MLFLOW_SECRETS)]
    assert [s["name"] for s in with_registry] == ["Model age"]
    env = with_registry[0]["env"]
    assert {k: env[k] for k in MLFLOW_SECRETS} == {
        k: f"${{{{ secrets.{k.replace('TRACKING', 'READ')} }}}}" for k in MLFLOW_SECRETS
    }
    assert "gitops-ml model-age" in with_registry[0]["run"]
    assert not [s for s in job["steps"] if "aws-actions" in s.get("uses", "")]


def test_the_model_age_check_is_skipped_with_a_notice_without_a_registry(tmp_path: Path) -> None:
    """The template's default: no MLFLOW_READ_URI, no registry to read; the step says so."""
    step = next(s for s in _load("monitor.yml")["jobs"]["model-age"]["steps"]
                if s.get("name") == "Model age")  # fmt: skip
    script = tmp_path / "step.sh"
    script.write_text(step["run"])
    summary = tmp_path / "summary.md"
    env = {"PATH": os.environ["PATH"], "GITHUB_STEP_SUMMARY": str(summary),
           "MLFLOW_TRACKING_URI": ""}  # fmt: skip
    proc = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert summary.read_text().startswith("## Model age: not checked\n\nnot checked: no ")
    assert proc.stdout.startswith("::notice title=Model age::not checked: no MLFLOW_READ_URI")
    assert not (tmp_path / "reports").exists()


def test_ci_sets_up_node_and_cancels_only_pull_request_runs() -> None:
    doc = _load("ci.yml")
    assert doc["concurrency"]["cancel-in-progress"] == "${{ github.event_name == 'pull_request' }}"
    (job,) = doc["jobs"].values()
    uses = [s.get("uses", "") for s in job["steps"]]
    (node,) = [s for s in job["steps"] if s.get("uses", "").startswith("actions/setup-node@")]
    assert node["with"]["node-version"] == "22"  # jsdom 29: ^20.19, ^22.13 or >=24
    test = next(i for i, s in enumerate(job["steps"]) if s.get("run") == "make test")
    assert uses.index(node["uses"]) < test


def _monitor_step(name: str) -> dict:
    job = _load("monitor.yml")["jobs"]["drift"]
    return next(s for s in job["steps"] if s.get("name") == name)


@pytest.mark.parametrize(("code", "remote"), [("1", ""), ("1", "storage"), ("0", "")])
def test_monitor_without_a_dvc_remote_says_what_to_configure(
    tmp_path: Path, code: str, remote: str
) -> None:
    from gitops_ml.monitor.retrain import NO_REMOTE_HINT

    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "drift.md").write_text("## Data drift: **drift detected**\n")
    summary = tmp_path / "summary.md"
    script = tmp_path / "step.sh"
    script.write_text(_monitor_step("Job summary")["run"])
    env = {
        # The venv's python first, as the Install step puts it on the runner's PATH.
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "GITHUB_STEP_SUMMARY": str(summary),
        "DRIFT_CODE": code, "DVC_REMOTE": remote,
    }  # fmt: skip
    proc = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    text = summary.read_text()
    assert text.startswith("## Data drift")
    if code == "1" and not remote:
        # The same words as `gitops-ml retrain` refusing, in the summary and as a warning.
        assert f"No retraining pull request: {NO_REMOTE_HINT}" in text
        assert proc.stdout.startswith("::warning title=No DVC remote::No retraining pull request")
    else:
        assert "DVC remote" not in text and proc.stdout == ""
    opened = _monitor_step("Open the retraining pull request")["if"]
    assert opened == "steps.drift.outputs.code == '1' && steps.dvc.outputs.remote != ''"


def _codeowners() -> list[str]:
    owned = []
    for line in (ROOT / ".github" / "CODEOWNERS").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            pattern, *owners = line.split()
            assert owners, line
            owned.append(pattern)
    return owned


def test_codeowners_cover_what_decides_a_release() -> None:
    """Every path that can loosen the gate or change what is promoted has an owner, and every
    owned path exists (a moved module must not silently lose its owner)."""
    owned = _codeowners()
    for pattern in owned:
        assert pattern.startswith("/"), f"anchor {pattern} at the repository root"
        assert (ROOT / pattern.lstrip("/")).exists(), f"CODEOWNERS names a missing path: {pattern}"
    for path in (
        ".github/workflows/pr.yml", ".github/workflows/promote.yml", ".github/CODEOWNERS",
        "dvc.yaml", "dvc.lock", "params.yaml", "gitops.yaml", ".dvc/config", "requirements.lock",
        "requirements-runtime.lock",
        "src/gitops_ml/pr/gate.py", "src/gitops_ml/pr/baseline.py", "src/gitops_ml/pr/report.py",
        "src/gitops_ml/release/promote.py", "src/gitops_ml/lineage/artifacts.py",
        "src/gitops_ml/lineage/dvclock.py", "src/gitops_ml/stages/split.py",
    ):  # fmt: skip
        assert (ROOT / path).exists(), path
        assert any(
            f"/{path}" == p or (p.endswith("/") and f"/{path}".startswith(p)) for p in owned
        ), path


# -- DVC remotes: every one that is added is also verified -------------------------------------

_REMOTE_ADD = re.compile(r"dvc remote add (?:-d |--default |-f |--local )*(\w+) ")


def _unverified_remotes(text: str) -> list[str]:
    """Each line of `text` that adds a DVC remote NAME with no `dvc remote modify NAME verify
    true` within the next ten lines (and the same fenced block)."""
    lines = text.splitlines()
    missing = []
    for i, line in enumerate(lines):
        for name in _REMOTE_ADD.findall(line):
            after = lines[i : i + 10]
            fence = next((k for k, x in enumerate(after) if x.startswith("```")), len(after))
            if not any(f"dvc remote modify {name} verify true" in x for x in after[:fence]):
                missing.append(line.strip())
    return missing


def test_unverified_remotes_are_found() -> None:
    assert _unverified_remotes("dvc remote add -d storage s3://b/p\n```\n") == [
        "dvc remote add -d storage s3://b/p"
    ]
    assert _unverified_remotes(
        "dvc remote add -d s s3://b\ndvc remote add -d s gs://b\ndvc remote modify s verify true\n"
    ) == []  # fmt: skip


def test_every_dvc_remote_the_readme_and_workflows_add_is_verified() -> None:
    """DVC then re-hashes every object it downloads (`verify = true`)."""
    texts = {"README.md": (ROOT / "README.md").read_text()}
    texts.update({p.name: p.read_text() for p in WORKFLOWS})
    assert "dvc remote add" in texts["README.md"]
    for name, text in texts.items():
        assert _unverified_remotes(text) == [], name
