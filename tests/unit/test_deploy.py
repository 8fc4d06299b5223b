"""The deployment on paper (deploy/), checked by code: the Helm values give Dagster an instance
config its own schemas accept (the K8sRunLauncher, Postgres storage, the run queue with one run
per customer shard), the user-code image is built from the repository's files only, as the
wheel's packages, non-root, and every setting the deployment gives is one the product reads.

The chart is not downloaded (no network): `instance_config` renders the parts of its
`configmap-instance.yaml` these values use, key for key as the chart's templates write them
(helpers/instance/_run-launcher.tpl, _postgresql.tpl, _run-coordinator.tpl, _concurrency.tpl).
"""

from __future__ import annotations

import ast
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import yaml

from tests.support.environment import REPO

DEPLOY = REPO / "deploy"
RELEASE_NAMESPACE = "billing"


def values() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "helm" / "values.yaml").read_text())


def secrets() -> list[dict[str, Any]]:
    return list(yaml.safe_load_all((DEPLOY / "helm" / "secret.example.yaml").read_text()))


def _names(items: list[dict[str, str]] | None) -> list[str]:
    return [item["name"] for item in items or [] if "name" in item]


def run_launcher_config(v: dict[str, Any]) -> dict[str, Any]:
    """`dagsterYaml.runLauncher.k8s`: the K8sRunLauncher's config the chart writes."""
    k8s = v["runLauncher"]["config"]["k8sRunLauncher"]
    config: dict[str, Any] = {
        "load_incluster_config": k8s["loadInclusterConfig"],
        "job_namespace": k8s.get("jobNamespace") or RELEASE_NAMESPACE,
        "image_pull_policy": k8s["imagePullPolicy"],
        "service_account_name": v["global"]["serviceAccountName"],
        "dagster_home": v["global"]["dagsterHome"],
        "instance_config_map": "billing-dagster-instance",
        "postgres_password_secret": v["global"]["postgresqlSecretName"],
    }
    simple = {"envConfigMaps": "env_config_maps", "envSecrets": "env_secrets"}
    for key, name in simple.items():
        if k8s.get(key):
            config[name] = _names(k8s[key])
    verbatim = {"envVars": "env_vars", "volumeMounts": "volume_mounts", "volumes": "volumes",
                "labels": "labels", "resources": "resources",
                "securityContext": "security_context"}
    for key, name in verbatim.items():
        if k8s.get(key):
            config[name] = k8s[key]
    if k8s.get("failPodOnRunFailure"):
        config["fail_pod_on_run_failure"] = True
    run_k8s = k8s.get("runK8sConfig") or {}
    parts = {"containerConfig": "container_config", "podSpecConfig": "pod_spec_config",
             "podTemplateSpecMetadata": "pod_template_spec_metadata",
             "jobSpecConfig": "job_spec_config", "jobMetadata": "job_metadata"}
    if run_k8s:
        config["run_k8s_config"] = {name: run_k8s[key] for key, name in parts.items()
                                    if run_k8s.get(key)}
    return config


def postgres_config(v: dict[str, Any]) -> dict[str, Any]:
    """`dagsterYaml.postgresql.config`: every storage's Postgres connection."""
    pg = v["postgresql"]
    return {"postgres_db": {
        "username": pg["postgresqlUsername"], "password": {"env": "DAGSTER_PG_PASSWORD"},
        "hostname": pg["postgresqlHost"], "db_name": pg["postgresqlDatabase"],
        "port": pg["service"]["port"], "params": pg.get("postgresqlParams") or {}}}


def run_coordinator_config(v: dict[str, Any]) -> dict[str, Any]:
    """`dagsterYaml.runCoordinator.queued` (max runs and tag limits live in `concurrency`)."""
    queued = v["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    config = {}
    if queued.get("maxConcurrentRuns") is not None:
        config["max_concurrent_runs"] = queued["maxConcurrentRuns"]
    if queued.get("tagConcurrencyLimits"):
        config["tag_concurrency_limits"] = queued["tagConcurrencyLimits"]
    if queued.get("dequeueIntervalSeconds"):
        config["dequeue_interval_seconds"] = queued["dequeueIntervalSeconds"]
    return config


def concurrency_config(v: dict[str, Any]) -> dict[str, Any]:
    """`dagsterYaml.concurrency`: pools and run limits."""
    pools, runs = v["concurrency"].get("pools", {}), v["concurrency"].get("runs", {})
    config: dict[str, Any] = {}
    if pools.get("defaultLimit") is not None:
        config["pools"] = {"default_limit": pools["defaultLimit"]}
    rendered_runs: dict[str, Any] = {}
    if runs.get("maxConcurrentRuns") is not None:
        rendered_runs["max_concurrent_runs"] = runs["maxConcurrentRuns"]
    if runs.get("tagConcurrencyLimits"):
        rendered_runs["tag_concurrency_limits"] = runs["tagConcurrencyLimits"]
    if rendered_runs:
        config["runs"] = rendered_runs
    return config


def instance_config(v: dict[str, Any]) -> dict[str, Any]:
    """The dagster.yaml the chart's instance ConfigMap holds for these values."""
    assert v["runLauncher"]["type"] == "K8sRunLauncher"
    assert v["dagsterDaemon"]["runCoordinator"]["type"] == "QueuedRunCoordinator"
    storage = postgres_config(v)
    return {
        "schedule_storage": {"module": "dagster_postgres.schedule_storage",
                             "class": "PostgresScheduleStorage", "config": storage},
        "run_launcher": {"module": "dagster_k8s", "class": "K8sRunLauncher",
                         "config": run_launcher_config(v)},
        "run_storage": {"module": "dagster_postgres.run_storage",
                        "class": "PostgresRunStorage", "config": storage},
        "event_log_storage": {"module": "dagster_postgres.event_log",
                              "class": "PostgresEventLogStorage", "config": storage},
        "run_coordinator": {"module": "dagster._core.run_coordinator",
                            "class": "QueuedRunCoordinator",
                            "config": run_coordinator_config(v)},
        "concurrency": concurrency_config(v),
        "telemetry": {"enabled": False},
    }


def assert_valid(config_type: Any, config: Any) -> None:
    """Dagster's own validation of `config` against `config_type` (structure and types; a
    `{env: NAME}` source is read in the cluster, not here)."""
    from dagster._config import validate_config

    result = validate_config(config_type, config)
    assert result.success, [error.message for error in result.errors or []]


def test_the_run_launcher_config_is_valid_for_dagster_k8s():
    from dagster_k8s import K8sRunLauncher

    config = run_launcher_config(values())
    assert_valid(K8sRunLauncher.config_type(), config)
    assert config["env_secrets"] == ["billing-secrets"]
    assert config["resources"]["requests"]["cpu"] == "2"
    # a typo in the values is caught by the same check
    from dagster._config import validate_config

    broken = {**config, "run_k8s_config": {"pod_spec_conifg": {}}}
    assert not validate_config(K8sRunLauncher.config_type(), broken).success


def test_the_instance_config_is_valid_with_postgres_storage_and_a_run_per_shard():
    from dagster._core.instance.config import dagster_instance_config_schema
    from dagster._core.run_coordinator import QueuedRunCoordinator
    from dagster_postgres import PostgresRunStorage

    from pipelines.sharding import SHARD_DIMENSION, SHARD_TAG

    config = instance_config(values())
    assert_valid(dagster_instance_config_schema(), config)
    assert_valid(PostgresRunStorage.config_type(), config["run_storage"]["config"])
    assert_valid(QueuedRunCoordinator.config_type(), config["run_coordinator"]["config"])
    limits = {limit["key"]: limit for limit in config["concurrency"]["runs"][
        "tag_concurrency_limits"]}
    for key in (SHARD_TAG, f"dagster/partition/{SHARD_DIMENSION}"):
        assert limits[key] == {"key": key, "value": {"applyLimitPerUniqueValue": True},
                               "limit": 1}
    shipped = yaml.safe_load((REPO / "dagster.yaml").read_text())
    assert config["concurrency"]["pools"] == shipped["concurrency"]["pools"]


def test_the_k8s_job_executor_config_schema_accepts_the_run_pod_settings():
    """The run pods' settings (resources, security context) are also what a job switched to
    the `k8s_job_executor` (a pod per step) would take: the same keys, validated by its
    schema, so the values stay usable if a step-level executor is chosen (docs/scaling.md)."""
    from dagster_k8s import k8s_job_executor

    launcher = run_launcher_config(values())
    executor = {"job_namespace": launcher["job_namespace"],
                "image_pull_policy": launcher["image_pull_policy"],
                "service_account_name": launcher["service_account_name"],
                "env_secrets": launcher["env_secrets"],
                "resources": launcher["resources"],
                "step_k8s_config": {"pod_spec_config": launcher["run_k8s_config"][
                    "pod_spec_config"]},
                "max_concurrent": 1}
    assert_valid(k8s_job_executor.config_schema.config_type, executor)


def test_the_user_deployment_serves_the_code_location_with_settings_the_product_reads():
    v = values()
    [deployment] = v["dagster-user-deployments"]["deployments"]
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert deployment["codeServerArgs"] == ["--module-name",
                                            pyproject["tool"]["dagster"]["module_name"]]
    assert deployment["port"] == 3030
    assert deployment["includeConfigInLaunchedRuns"]["enabled"]
    given = _names(deployment["env"]) + [
        name for doc in secrets() if doc["metadata"]["name"] == "billing-secrets"
        for name in doc["stringData"]]
    assert {"BILLING_SHARDS", "BILLING_LANDING", "STRIPE_API_KEY",
            "AWS_SECRET_ACCESS_KEY"} <= set(given)
    read = names_the_product_reads()
    assert sorted(set(given) - read) == [], "settings the product never reads"
    settings_text = (REPO / "pipelines" / "settings.py").read_text()
    for name in given:
        if name.startswith("BILLING_"):
            assert f'"{name}"' in settings_text, f"{name} is not a setting of pipelines.settings"
    assert {doc["metadata"]["name"] for doc in secrets()} == {
        *_names(deployment["envSecrets"]), v["global"]["postgresqlSecretName"]}


def names_the_product_reads() -> set[str]:
    """Every upper-case string constant in the product's code (pipelines/): the environment
    variable names it reads are among them."""
    found: set[str] = set()
    for path in (REPO / "pipelines").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Constant) and isinstance(node.value, str)
                    and re.fullmatch(r"[A-Z][A-Z0-9_]+", node.value)):
                found.add(node.value)
    return found


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of deploy/Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", (DEPLOY / "Dockerfile").read_text())
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            rows.append((word.upper(), rest.strip()))
    return rows


def test_the_image_is_built_from_the_repository_only_as_the_wheel_non_root():
    rows = dockerfile_instructions()
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    wheel_packages = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    assert not any(word == "ADD" for word, _ in rows), "ADD may fetch URLs: COPY only"
    bases = [rest.split()[0] for word, rest in rows if word == "FROM"]
    assert all(base == "python:3.11-slim" for base in bases), bases
    copied: list[str] = []
    for word, rest in rows:
        if word == "COPY" and not rest.startswith("--from="):
            *sources, _target = shlex.split(rest)
            copied += sources
        if word == "RUN":
            assert not re.search(r"https?://|curl|wget|git |apt-get", rest), rest
    assert sorted(copied) == sorted(["pyproject.toml", "uv.lock", "README.md",
                                     *wheel_packages])
    for source in copied:
        assert (REPO / source).exists() and ".." not in Path(source).parts
    runs = " ".join(rest for word, rest in rows if word == "RUN")
    makefile = (REPO / "Makefile").read_text()
    uv_version = re.search(r"^UV_VERSION := (\S+)$", makefile, re.M).group(1)
    assert f"uv=={uv_version}" in runs
    assert "uv sync --frozen --no-dev --group deploy --no-editable" in runs
    users = [rest for word, rest in rows if word == "USER"]
    assert users and users[-1] not in ("0", "root")
    assert not any(word == "ENTRYPOINT" for word, _ in rows)
    [cmd] = [rest for word, rest in rows if word == "CMD"]
    assert yaml.safe_load(cmd)[:3] == ["dagster", "code-server", "start"]
    assert "pipelines.definitions" in cmd
    assert "deploy" in pyproject["dependency-groups"]
