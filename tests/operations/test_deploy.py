"""Deploy files run commands and options that exist; the docs match the code.

Every `gateway ...` command in deploy/ (compose, Kubernetes manifests, the Dockerfile's
CMD and HEALTHCHECK) is checked against the real CLI: the subcommand must exist and
every option passed must appear in its --help and parse. The Kubernetes probes must
point at /healthz and /readyz on the port the API listens on, every GATEWAY_ variable
the deploy files set must be a real setting, docs/configuration.md must be exactly what
`python -m gateway.configdoc` renders, and README.md's configuration table and the
docs may name only settings that exist.

The Kubernetes manifests are also checked as `kubectl apply` would take them: against
the API schemas (kubernetes-validate, offline), one image name and tag everywhere (the
distribution's name and version), no placeholder Secret under the real Secret's name
in what `kubectl apply -f deploy/k8s/` or `-k` applies, the migrate Job applied before
the Deployments and their pods waiting for the schema, and the workers' metrics port
declared and scrapable.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import typer.main
import yaml
from pydantic import ValidationError
from typer.testing import CliRunner

from gateway import configdoc
from gateway.cli import app
from gateway.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DOCKERFILE = DEPLOY / "Dockerfile"
K8S = DEPLOY / "k8s"
KUSTOMIZATION = K8S / "Kustomization"
# What `kubectl apply -f DIR` reads of a folder (cli-runtime's FileExtensions).
KUBECTL_EXTENSIONS = (".json", ".yaml", ".yml")
# The names kustomize reads as a folder's kustomization (at most one may exist).
KUSTOMIZE_NAMES = ("kustomization.yaml", "kustomization.yml", "Kustomization")

PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
IMAGE = f"{PROJECT['name']}:{PROJECT['version']}"
SECRET_KEYS = {"GATEWAY_API_KEY", "GATEWAY_SECRET_KEY", "GATEWAY_DATABASE_URL", "GATEWAY_REDIS_URL"}

SETTINGS_VARS = {configdoc.env_name(name) for name in Settings.model_fields}
VAR_RE = re.compile(r"\bGATEWAY_[A-Z0-9_]*[A-Z0-9]\b")


# --- reading the deploy files ----------------------------------------------------------


def _yaml_files() -> list[Path]:
    return sorted(p for p in DEPLOY.rglob("*") if p.suffix in (".yaml", ".yml"))


def _documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if isinstance(doc, dict)]


def _compose_files() -> list[Path]:
    return [p for p in _yaml_files() if any("services" in d for d in _documents(p))]


def _k8s_objects() -> list[tuple[Path, dict[str, Any]]]:
    return [(p, d) for p in _yaml_files() for d in _documents(p) if "kind" in d]


def _dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    instructions: list[tuple[str, str]] = []
    current = ""
    for line in DOCKERFILE.read_text().splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        current += stripped
        keyword, _, rest = current.partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
        current = ""
    return instructions


def _docker_argv(text: str) -> list[str]:
    """The argv of a CMD/ENTRYPOINT argument: exec form (JSON) or shell form."""
    text = text.strip()
    if text.startswith("["):
        argv = json.loads(text)
        assert all(isinstance(a, str) for a in argv), text
        return list(argv)
    return shlex.split(text)


def _image_entrypoint() -> list[str]:
    entry = [_docker_argv(rest) for kw, rest in _dockerfile_instructions() if kw == "ENTRYPOINT"]
    return entry[-1] if entry else []


def _argv(value: Any) -> list[str]:
    """A command as compose or Kubernetes writes it, as an argv (shell wrappers unwrapped)."""
    if value is None:
        return []
    if isinstance(value, str):
        argv = shlex.split(value)
    else:
        assert isinstance(value, list) and all(isinstance(a, str) for a in value), value
        argv = list(value)
    if argv[:1] == ["CMD"]:
        argv = argv[1:]
    elif argv[:1] == ["CMD-SHELL"]:
        argv = shlex.split(" ".join(argv[1:]))
    if len(argv) >= 3 and os.path.basename(argv[0]) in ("sh", "bash") and argv[1] == "-c":
        argv = shlex.split(argv[2])
    return argv


@dataclass(frozen=True)
class Command:
    where: str
    argv: tuple[str, ...]

    @property
    def is_gateway(self) -> bool:
        return bool(self.argv) and os.path.basename(self.argv[0]) == "gateway"


def _pod_specs(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        if isinstance(node.get("containers"), list):
            yield node
        for value in node.values():
            yield from _pod_specs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _pod_specs(item)


def _containers() -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(where, container, its k8s object) for every container of every manifest."""
    for path, obj in _k8s_objects():
        for spec in _pod_specs(obj):
            for key in ("initContainers", "containers"):
                for container in spec.get(key) or []:
                    where = f"{path.relative_to(ROOT)}:{obj['kind']}/{container['name']}"
                    yield where, container, obj


def _container_argv(container: dict[str, Any]) -> list[str]:
    # Kubernetes: `command` replaces the image's ENTRYPOINT, `args` its CMD.
    command = _argv(container.get("command")) if "command" in container else _image_entrypoint()
    return command + _argv(container.get("args"))


def _probe_exec(container: dict[str, Any]) -> Iterator[tuple[str, list[str]]]:
    for key in ("livenessProbe", "readinessProbe", "startupProbe"):
        command = ((container.get(key) or {}).get("exec") or {}).get("command")
        if command is not None:
            yield key, _argv(command)
    for hook in ("postStart", "preStop"):
        command = (((container.get("lifecycle") or {}).get(hook) or {}).get("exec") or {}).get(
            "command"
        )
        if command is not None:
            yield hook, _argv(command)


def all_commands() -> list[Command]:
    commands: list[Command] = []
    for path in _compose_files():
        for doc in _documents(path):
            for name, service in (doc.get("services") or {}).items():
                where = f"{path.relative_to(ROOT)}:{name}"
                for key in ("entrypoint", "command"):
                    if service.get(key) is not None:
                        commands.append(Command(f"{where}.{key}", tuple(_argv(service[key]))))
                test = (service.get("healthcheck") or {}).get("test")
                if test is not None and test != ["NONE"]:
                    commands.append(Command(f"{where}.healthcheck", tuple(_argv(test))))
    for where, container, _obj in _containers():
        commands.append(Command(where, tuple(_container_argv(container))))
        for key, argv in _probe_exec(container):
            commands.append(Command(f"{where}.{key}", tuple(argv)))
    entrypoint = _image_entrypoint()
    for keyword, rest in _dockerfile_instructions():
        where = f"{DOCKERFILE.relative_to(ROOT)}:{keyword}"
        if keyword == "CMD":
            commands.append(Command(where, tuple(entrypoint + _docker_argv(rest))))
        elif keyword == "HEALTHCHECK" and rest.upper() != "NONE":
            _options, _, cmd = rest.partition(" CMD ")
            assert cmd, f"HEALTHCHECK without CMD: {rest}"
            commands.append(Command(where, tuple(_docker_argv(cmd))))
    return commands


GATEWAY_COMMANDS = [c for c in all_commands() if c.is_gateway]


# --- the commands exist ----------------------------------------------------------------


def _resolve(args: list[str]) -> tuple[list[str], Any, list[str]]:
    """(subcommand path, its click command, the arguments left for it).

    Typer builds click commands (its own vendored click in recent versions): a group is
    told by its `commands`, not by its class.
    """
    command: Any = typer.main.get_command(app)
    path: list[str] = []
    rest = list(args)
    while isinstance(getattr(command, "commands", None), dict):
        assert rest and not rest[0].startswith("-"), (
            f"`gateway {' '.join(args)}` names no subcommand of `gateway {' '.join(path)}`"
        )
        sub = command.commands.get(rest[0])
        assert sub is not None, (
            f"`gateway {' '.join([*path, rest[0]])}` does not exist; "
            f"`gateway {' '.join(path)}` has {sorted(command.commands)}"
        )
        path.append(rest.pop(0))
        command = sub
    return path, command, rest


def test_the_deploy_files_run_the_gateway_commands_they_should() -> None:
    run = {" ".join(_resolve(list(c.argv[1:]))[0]) for c in GATEWAY_COMMANDS}
    assert {"serve", "worker", "migrate"} <= run, run
    places = {c.where.split(":")[0] for c in GATEWAY_COMMANDS}
    assert {"deploy/compose.yaml", "deploy/Dockerfile"} <= places
    assert any(p.startswith("deploy/k8s/") for p in places)


@pytest.mark.parametrize("command", GATEWAY_COMMANDS, ids=lambda c: c.where)
def test_command_exists_with_its_options(command: Command) -> None:
    path, cli_command, rest = _resolve(list(command.argv[1:]))
    result = CliRunner().invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    known = {opt for param in cli_command.params for opt in (*param.opts, *param.secondary_opts)}
    for token in rest:
        if token.startswith("-"):
            option = token.split("=", 1)[0]
            assert option in result.output, (
                f"{command.where}: `gateway {' '.join(path)}` --help does not mention {option}"
            )
            assert option in known, f"{command.where}: {option} is not an option of {path}"
    # The whole command line parses (option values of the right type, no extra arguments).
    with cli_command.make_context("gateway " + " ".join(path), list(rest)):
        pass


# --- the Dockerfile ----------------------------------------------------------------------


def test_dockerfile_is_slim_non_root_and_checks_health() -> None:
    instructions = _dockerfile_instructions()
    final_from = [rest for kw, rest in instructions if kw == "FROM"][-1]
    assert "slim" in final_from or "distroless" in final_from or "alpine" in final_from
    users = [rest for kw, rest in instructions if kw == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    healthchecks = [rest for kw, rest in instructions if kw == "HEALTHCHECK"]
    assert len(healthchecks) == 1 and "/healthz" in healthchecks[0]
    cmd = [c for c in GATEWAY_COMMANDS if c.where.endswith("Dockerfile:CMD")]
    assert len(cmd) == 1
    port = _option(list(cmd[0].argv), "--port") or "8000"
    assert f":{port}/healthz" in healthchecks[0], "HEALTHCHECK polls another port than CMD serves"


def _option(argv: list[str], name: str) -> str | None:
    for i, token in enumerate(argv):
        if token == name and i + 1 < len(argv):
            return argv[i + 1]
        if token.startswith(name + "="):
            return token.split("=", 1)[1]
    return None


# --- Kubernetes --------------------------------------------------------------------------


def _api_containers() -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    return [
        (w, c, o) for w, c, o in _containers() if _container_argv(c)[:2] == ["gateway", "serve"]
    ]


def _port_number(container: dict[str, Any], port: int | str) -> int:
    if isinstance(port, int):
        return port
    named = {p.get("name"): p["containerPort"] for p in container.get("ports") or []}
    assert port in named, f"port {port!r} is not a named port of {container['name']}"
    return int(named[port])


def test_k8s_api_probes_point_at_healthz_and_readyz() -> None:
    api = _api_containers()
    assert api, "no Kubernetes container runs gateway serve"
    for where, container, obj in api:
        assert obj["kind"] == "Deployment" and obj["spec"]["replicas"] == 2, where
        listen = int(_option(_container_argv(container), "--port") or 8000)
        liveness = container["livenessProbe"]["httpGet"]
        readiness = container["readinessProbe"]["httpGet"]
        assert liveness["path"] == "/healthz", where
        assert readiness["path"] == "/readyz", where
        for probe in (liveness, readiness):
            assert _port_number(container, probe["port"]) == listen, where
        assert _option(_container_argv(container), "--host") == "0.0.0.0", where


def test_k8s_probes_use_only_real_health_routes() -> None:
    probes = 0
    for where, container, _obj in _containers():
        for key in ("livenessProbe", "readinessProbe", "startupProbe"):
            probe = container.get(key)
            if not probe:
                continue
            probes += 1
            if "httpGet" in probe:
                assert probe["httpGet"]["path"] in ("/healthz", "/readyz"), where
                # A liveness probe on /readyz would restart every pod when the database blips.
                assert not (key == "livenessProbe" and probe["httpGet"]["path"] == "/readyz")
            else:
                assert "exec" in probe, f"{where}.{key}: only httpGet and exec probes are expected"
    assert probes >= 2


def test_k8s_workers_run_gateway_worker_with_limits_and_no_http_probe() -> None:
    workers = [
        (w, c, o) for w, c, o in _containers() if _container_argv(c)[:2] == ["gateway", "worker"]
    ]
    assert workers, "no Kubernetes container runs gateway worker"
    for where, container, obj in workers:
        # The autoscaler sets the count: a `replicas:` here would reset it on every apply.
        assert obj["kind"] == "Deployment" and "replicas" not in obj["spec"], where
        for key in ("livenessProbe", "readinessProbe", "startupProbe"):
            # A worker serves no HTTP: any probe must be an exec (of a real command,
            # checked with the other commands above).
            assert "httpGet" not in (container.get(key) or {}), where
            assert "tcpSocket" not in (container.get(key) or {}), where


def test_k8s_migrate_job_runs_gateway_migrate() -> None:
    jobs = [(w, c) for w, c, o in _containers() if o["kind"] == "Job"]
    assert [_container_argv(c)[:2] for _w, c in jobs] == [["gateway", "migrate"]]


def test_k8s_containers_have_resources_and_run_as_non_root() -> None:
    for where, container, obj in _containers():
        resources = container.get("resources") or {}
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(resources.get(kind) or {}), f"{where}: {kind}"
        pod = next(_pod_specs(obj))
        context = {**(pod.get("securityContext") or {}), **(container.get("securityContext") or {})}
        assert context.get("runAsNonRoot") is True, where
        # The image names its user; a numeric uid lets the kubelet check runAsNonRoot.
        assert isinstance(context.get("runAsUser"), int) and context["runAsUser"] != 0, where
        assert context.get("allowPrivilegeEscalation") is False, where
        assert context.get("readOnlyRootFilesystem") is True, where


def test_k8s_service_reaches_the_api_pods() -> None:
    services = [o for _p, o in _k8s_objects() if o["kind"] == "Service"]
    assert services
    for _where, container, obj in _api_containers():
        labels = obj["spec"]["template"]["metadata"]["labels"]
        matching = [s for s in services if s["spec"]["selector"].items() <= labels.items()]
        assert matching, "no Service selects the API pods"
        for service in matching:
            for port in service["spec"]["ports"]:
                _port_number(container, port.get("targetPort", port["port"]))


def _secret_references() -> set[str]:
    """The Secrets the containers read their environment from."""
    names: set[str] = set()
    for _where, container, _obj in _containers():
        for source in container.get("envFrom") or []:
            if "secretRef" in source:
                names.add(source["secretRef"]["name"])
        for item in container.get("env") or []:
            ref = (item.get("valueFrom") or {}).get("secretKeyRef")
            if ref:
                names.add(ref["name"])
    return names


def test_k8s_secret_and_config_reach_every_gateway_container() -> None:
    configs = [o for _p, o in _applied_objects() if o["kind"] == "ConfigMap"]
    assert len(configs) == 1
    assert _secret_references() == {"gateway-secrets"}
    (example,) = [o for _p, o in _k8s_objects() if o["kind"] == "Secret"]
    secret_data = example.get("stringData") or example.get("data") or {}
    assert set(secret_data) == SECRET_KEYS
    assert not set(secret_data) & set(configs[0]["data"]), "a setting is in both"
    for where, container, _obj in _containers():
        if not _container_argv(container)[:1] == ["gateway"]:
            continue
        sources = container.get("envFrom") or []
        assert {"secretRef": {"name": "gateway-secrets"}} in sources, where
        assert {"configMapRef": {"name": configs[0]["metadata"]["name"]}} in sources, where


# --- what `kubectl apply` applies ------------------------------------------------------------


def _kubectl_f_files() -> list[Path]:
    """The files `kubectl apply -f deploy/k8s/` applies (with -R too: sub-folders)."""
    return sorted(p for p in K8S.rglob("*") if p.is_file() and p.suffix in KUBECTL_EXTENSIONS)


def _applied_objects() -> list[tuple[Path, dict[str, Any]]]:
    return [(p, d) for p in _kubectl_f_files() for d in _documents(p) if "kind" in d]


def _kustomization() -> dict[str, Any]:
    found = [p.name for p in K8S.iterdir() if p.name in KUSTOMIZE_NAMES]
    # Without an extension, so that `kubectl apply -f deploy/k8s/` does not try to
    # apply it as an object (there is no such kind in a cluster).
    assert found == [KUSTOMIZATION.name], found
    document = yaml.safe_load(KUSTOMIZATION.read_text(encoding="utf-8"))
    assert isinstance(document, dict) and document["kind"] == "Kustomization"
    return document


def _kustomize_objects() -> list[tuple[Path, dict[str, Any]]]:
    """The objects `kubectl apply -k deploy/k8s/` applies, in its order (fifo)."""
    return [
        (K8S / name, d)
        for name in _kustomization()["resources"]
        for d in _documents(K8S / name)
        if "kind" in d
    ]


def test_apply_k_and_apply_f_apply_the_same_files() -> None:
    listed = list(_kustomization()["resources"])
    assert len(set(listed)) == len(listed), listed
    assert sorted(listed) == [str(p.relative_to(K8S)) for p in _kubectl_f_files()]


def test_applying_the_manifests_never_overwrites_the_real_secret() -> None:
    real = _secret_references()
    assert real
    kustomization = _kustomization()
    assert "secretGenerator" not in kustomization
    for _path, obj in [*_applied_objects(), *_kustomize_objects()]:
        assert not (obj["kind"] == "Secret" and obj["metadata"]["name"] in real), (
            f"applying deploy/k8s/ would overwrite the real Secret {obj['metadata']['name']}"
        )
    # The example, wherever it is, can be applied by mistake without harm.
    for path, obj in _k8s_objects():
        if obj["kind"] == "Secret":
            assert obj["metadata"]["name"] not in real, path
            assert not path.is_relative_to(K8S), f"{path}: applied with deploy/k8s/"


def _create_secret_commands(text: str) -> list[list[str]]:
    """The `kubectl create secret generic ...` commands a text shows (comment marks and
    line continuations removed)."""
    lines = [re.sub(r"^\s*#?\s*", "", line) for line in text.splitlines()]
    joined = "\n".join(lines).replace("\\\n", " ")
    return [
        shlex.split(match)
        for match in re.findall(r"^kubectl create secret generic .*$", joined, re.M)
    ]


@pytest.mark.parametrize(
    "path",
    [ROOT / "docs" / "operations.md", DEPLOY / "k8s-secret.example.yaml"],
    ids=lambda p: p.name,
)
def test_docs_create_the_real_secret_from_real_values(path: Path) -> None:
    (command,) = _create_secret_commands(path.read_text(encoding="utf-8"))
    assert command[4] in _secret_references(), command
    literals = dict(a.split("=", 1)[1].split("=", 1) for a in command if a.startswith("--from-"))
    assert set(literals) == SECRET_KEYS, command
    assert literals["GATEWAY_SECRET_KEY"] == "$(gateway secret-key generate)"


# --- one image name and tag -------------------------------------------------------------------


def test_one_image_name_and_tag_everywhere() -> None:
    images = {where: container["image"] for where, container, _obj in _containers()}
    assert images and set(images.values()) == {IMAGE}, images
    for path in _compose_files():
        for name, service in _documents(path)[0]["services"].items():
            if _argv(service.get("command"))[:1] == ["gateway"]:
                assert service.get("image") == IMAGE, f"{path.name}:{name}"
                # Built here, never pulled: a registry may have another image of that name.
                assert service.get("build") and service.get("pull_policy") == "build", name
    documented = re.findall(r"docker build .*-t (\S+)", DOCKERFILE.read_text(encoding="utf-8"))
    assert documented == [IMAGE], f"deploy/Dockerfile documents {documented}"
    assert _kustomization()["images"] == [{"name": PROJECT["name"], "newTag": PROJECT["version"]}]
    for _path, obj in _k8s_objects():
        labels = obj["metadata"].get("labels") or {}
        assert labels.get("app.kubernetes.io/name") == PROJECT["name"], obj["metadata"]["name"]
    texts = [p for p in DEPLOY.rglob("*") if p.is_file()]
    texts += [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    for path in texts:
        text = path.read_text(encoding="utf-8")
        for tag in re.findall(rf"\b{re.escape(PROJECT['name'])}:\d[\w.+-]*", text):
            assert tag == IMAGE, f"{path.relative_to(ROOT)} names {tag}, not {IMAGE}"
        if path.is_relative_to(DEPLOY):
            assert "webhook-gateway" not in text, path


# --- first install: the migrate Job first, the Deployments wait for the schema ---------------


def test_kustomization_applies_the_migrate_job_before_the_deployments() -> None:
    # kustomize's default order sorts by kind and puts a Job after the Deployments.
    assert _kustomization().get("sortOptions") == {"order": "fifo"}
    kinds = [obj["kind"] for _path, obj in _kustomize_objects()]
    assert kinds.count("Job") == 1 and kinds.count("Deployment") == 2, kinds
    assert kinds.index("ConfigMap") < kinds.index("Job") < kinds.index("Deployment"), kinds


def test_k8s_deployments_wait_for_the_schema_before_starting() -> None:
    deployments = [obj for _path, obj in _applied_objects() if obj["kind"] == "Deployment"]
    assert {d["metadata"]["name"] for d in deployments} == {"gateway-api", "gateway-worker"}
    for deployment in deployments:
        name = deployment["metadata"]["name"]
        pod = deployment["spec"]["template"]["spec"]
        waits = [
            c
            for c in pod.get("initContainers") or []
            if _container_argv(c)[:4] == ["gateway", "migrate", "--check", "--wait"]
        ]
        assert len(waits) == 1, f"{name}: no init container waits for the schema"
        # Long enough for the migrate Job to start and finish on a first install.
        assert float(_option(_container_argv(waits[0]), "--wait") or 0) >= 300, name
        for container in pod["containers"]:
            assert container["image"] == waits[0]["image"], name
            assert container["envFrom"] == waits[0]["envFrom"], name


# --- worker metrics ---------------------------------------------------------------------------


def test_k8s_workers_serve_their_metrics_to_be_scraped() -> None:
    services = [o for _p, o in _applied_objects() if o["kind"] == "Service"]
    workers = [
        (w, c, o) for w, c, o in _containers() if _container_argv(c)[:2] == ["gateway", "worker"]
    ]
    assert workers
    for where, container, obj in workers:
        argv = _container_argv(container)
        port = _option(argv, "--metrics-port")
        assert port is not None, f"{where}: the worker serves no metrics"
        assert _option(argv, "--metrics-host") == "0.0.0.0", where
        assert int(port) in [p["containerPort"] for p in container.get("ports") or []], where
        template = obj["spec"]["template"]["metadata"]
        assert template["annotations"]["prometheus.io/port"] == port, where
        matching = [
            s for s in services if s["spec"]["selector"].items() <= template["labels"].items()
        ]
        assert matching, f"{where}: no Service lists the worker pods"
        for service in matching:
            # Headless: each worker counts its own attempts, so each is a target.
            assert service["spec"].get("clusterIP") == "None", service["metadata"]["name"]
            targets = [
                _port_number(container, p.get("targetPort", p["port"]))
                for p in service["spec"]["ports"]
            ]
            assert targets == [int(port)], service["metadata"]["name"]


def test_k8s_scrape_annotations_name_a_declared_port() -> None:
    annotated = 0
    for _path, obj in _applied_objects():
        template = (obj.get("spec") or {}).get("template")
        annotations = ((template or {}).get("metadata") or {}).get("annotations") or {}
        if annotations.get("prometheus.io/scrape") != "true":
            continue
        annotated += 1
        ports = [
            p["containerPort"] for c in template["spec"]["containers"] for p in c.get("ports") or []
        ]
        assert int(annotations["prometheus.io/port"]) in ports, obj["metadata"]["name"]
    assert annotated == 2


def test_compose_workers_serve_their_metrics() -> None:
    for path in _compose_files():
        for name, service in _documents(path)[0]["services"].items():
            argv = _argv(service.get("command"))
            if argv[:2] == ["gateway", "worker"]:
                port = _option(argv, "--metrics-port")
                assert port and _option(argv, "--metrics-host") == "0.0.0.0", name
                assert port in [str(p) for p in service.get("expose") or []], name


@pytest.mark.parametrize("doc", ["operations.md", "observability.md"])
def test_docs_say_worker_metrics_can_be_scraped(doc: str) -> None:
    text = " ".join((ROOT / "docs" / doc).read_text(encoding="utf-8").split())
    for claim in ("cannot be scraped", "serves no HTTP", "no metrics"):
        assert claim not in text, f"docs/{doc} still says {claim!r}"
    assert "--metrics-port" in text and "gateway-worker-metrics" in text


def test_operations_doc_gives_the_install_order() -> None:
    text = " ".join((ROOT / "docs" / "operations.md").read_text(encoding="utf-8").split())
    assert "kubectl apply -k deploy/k8s/" in text
    assert "gateway migrate --check --wait" in text
    assert text.index("kubectl create secret generic") < text.index("kubectl apply -k")


# --- the Kubernetes API schemas ---------------------------------------------------------------

# The oldest and the newest Kubernetes whose schemas kubernetes-validate ships.
K8S_VERSIONS = [kubernetes_validate.utils.all_versions()[0], kubernetes_validate.latest_version()]


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize(
    "path", sorted({p for p, _o in _k8s_objects()}), ids=lambda p: str(p.relative_to(DEPLOY))
)
def test_manifests_match_the_kubernetes_schemas(path: Path, version: str) -> None:
    for obj in _documents(path):
        if obj["apiVersion"] == SERVICE_MONITOR_API:
            # A CRD's schema is not among Kubernetes' own: checked by the next test instead.
            continue
        # strict: a misspelt or misplaced field is an error, not silently dropped.
        kubernetes_validate.validate(obj, version, strict=True)


# --- autoscaling, disruptions, network, monitoring ----------------------------------------

SERVICE_MONITOR_API = "monitoring.coreos.com/v1"
SERVICE_MONITOR = DEPLOY / "k8s-servicemonitor.yaml"


def _objects_of(kind: str) -> list[dict[str, Any]]:
    return [o for _p, o in _applied_objects() if o["kind"] == kind]


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    assert set(selector) == {"matchLabels"}, selector  # matchExpressions: not read here
    return bool(selector["matchLabels"].items() <= labels.items())


def _deployments() -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in _objects_of("Deployment")}


def test_k8s_workers_autoscale_on_cpu() -> None:
    (hpa,) = _objects_of("HorizontalPodAutoscaler")
    target = hpa["spec"]["scaleTargetRef"]
    workers = _deployments()[target["name"]]
    assert target["kind"] == "Deployment" and target["apiVersion"] == "apps/v1"
    assert _container_argv(workers["spec"]["template"]["spec"]["containers"][0])[:2] == [
        "gateway",
        "worker",
    ]
    assert 2 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
    (metric,) = hpa["spec"]["metrics"]
    assert metric["type"] == "Resource" and metric["resource"]["name"] == "cpu"
    # Utilization is measured against the request, which every container has.
    assert all(c["resources"]["requests"]["cpu"] for c in _pod_containers(workers))
    # The backlog metric the docs name for scaling on it is one the gateway exports.
    text = HPA_DOC.read_text(encoding="utf-8") + (ROOT / "docs/operations.md").read_text()
    assert "gateway_oldest_due_delivery_seconds" in text
    assert "gateway_oldest_due_delivery_seconds" in (ROOT / "gateway/metrics.py").read_text()


HPA_DOC = K8S / "worker-hpa.yaml"


def _pod_containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    spec = obj["spec"]["template"]["spec"]
    return [*(spec.get("initContainers") or []), *spec["containers"]]


def test_every_deployment_has_a_disruption_budget_that_lets_a_drain_go_on() -> None:
    budgets = _objects_of("PodDisruptionBudget")
    for name, deployment in _deployments().items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        (budget,) = [b for b in budgets if _selects(b["spec"]["selector"], labels)]
        # One pod at a time: never all at once, and never none (a drain that cannot finish).
        assert budget["spec"] == {**budget["spec"], "maxUnavailable": 1}, name
        assert "minAvailable" not in budget["spec"], name


def test_network_policy_opens_only_the_declared_ports_and_no_private_egress() -> None:
    policies = _objects_of("NetworkPolicy")
    for name, deployment in _deployments().items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        mine = [p for p in policies if _selects(p["spec"]["podSelector"], labels)]
        kinds = {t for p in mine for t in p["spec"]["policyTypes"]}
        assert kinds == {"Ingress", "Egress"}, name
        declared = {
            port.get("name") for c in _pod_containers(deployment) for port in c.get("ports") or []
        }
        opened = {
            port["port"]
            for p in mine
            for rule in p["spec"].get("ingress") or []
            for port in rule.get("ports") or []
        }
        assert opened == declared, name
        # Every ingress rule names its ports (a rule without them opens every port).
        assert all(rule.get("ports") for p in mine for rule in p["spec"].get("ingress") or [])
    # The migrate Job's pods are covered too: in, nothing; out, as the others.
    (job,) = _objects_of("Job")
    job_labels = job["spec"]["template"]["metadata"]["labels"]
    assert any(_selects(p["spec"]["podSelector"], job_labels) for p in policies)
    blocks = [
        peer["ipBlock"]
        for p in policies
        for rule in p["spec"].get("egress") or []
        for peer in rule.get("to") or []
        if "ipBlock" in peer
    ]
    (v4,) = [b for b in blocks if b["cidr"] == "0.0.0.0/0"]
    # The cloud metadata address and the cluster's private ranges stay out of reach.
    assert {"169.254.0.0/16", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"} <= set(v4["except"])


def test_every_pod_writes_only_to_its_tmp() -> None:
    for path, obj in _applied_objects():
        for spec in _pod_specs(obj):
            volumes = {v["name"]: v for v in spec.get("volumes") or []}
            for container in [*(spec.get("initContainers") or []), *spec["containers"]]:
                where = f"{path.name}:{container['name']}"
                assert container["securityContext"]["readOnlyRootFilesystem"] is True, where
                mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts") or []}
                # mTLS client certificates go to a temporary file (credentials.py).
                assert set(mounts) == {"/tmp"}, where
                assert "emptyDir" in volumes[mounts["/tmp"]], where
    assert "PYTHONDONTWRITEBYTECODE=1" in DOCKERFILE.read_text()


def test_no_secret_setting_is_in_a_configmap() -> None:
    secret_like = SECRET_KEYS | {
        "GATEWAY_OLD_SECRET_KEYS",
        "GATEWAY_METRICS_TOKEN",
        "GATEWAY_SMTP_URL",
    }
    for config in _objects_of("ConfigMap"):
        assert not set(config["data"]) & secret_like, config["metadata"]["name"]
        for value in config["data"].values():
            assert "://" not in value or "@" not in value, "a URL with credentials"


def test_servicemonitor_scrapes_the_api_and_every_worker() -> None:
    """Its CRD's schema is not shipped with kubernetes-validate: its shape is checked here,
    and it lies outside deploy/k8s/ so that clusters without the CRD can apply that."""
    (monitor,) = _documents(SERVICE_MONITOR)
    assert monitor["apiVersion"] == SERVICE_MONITOR_API and monitor["kind"] == "ServiceMonitor"
    assert set(monitor["spec"]) == {"selector", "endpoints"}
    assert not SERVICE_MONITOR.is_relative_to(K8S)
    services = [
        s
        for s in _objects_of("Service")
        if _selects(monitor["spec"]["selector"], s["metadata"]["labels"])
    ]
    ports = {p["name"] for s in services for p in s["spec"]["ports"]}
    scraped = set()
    for endpoint in monitor["spec"]["endpoints"]:
        assert set(endpoint) <= {"port", "path", "interval"}, endpoint
        assert endpoint["path"] == "/metrics" and endpoint["port"] in ports, endpoint
        scraped.add(endpoint["port"])
    # Both the API (the backlog gauges) and the workers (the attempts they sent).
    names = {
        s["metadata"]["name"] for s in services if {p["name"] for p in s["spec"]["ports"]} & scraped
    }
    assert names == {"gateway-api", "gateway-worker-metrics"}


# --- GATEWAY_ variables the deploy files set ------------------------------------------------


def _set_variables() -> Iterator[tuple[str, str, Any]]:
    """(where, name, value) of every environment variable the deploy files set."""
    for path in _compose_files():
        for doc in _documents(path):
            blocks = [(f"x:{k}", v) for k, v in doc.items() if k.startswith("x-")]
            blocks += list((doc.get("services") or {}).items())
            for name, service in blocks:
                env = (service or {}).get("environment") or {}
                if isinstance(env, list):
                    env = dict(item.split("=", 1) for item in env)
                for key, value in env.items():
                    yield f"{path.relative_to(ROOT)}:{name}", key, value
    for path, obj in _k8s_objects():
        if obj["kind"] in ("ConfigMap", "Secret"):
            for key, value in (obj.get("stringData") or obj.get("data") or {}).items():
                yield f"{path.relative_to(ROOT)}:{obj['kind']}", key, value
    for where, container, _obj in _containers():
        for item in container.get("env") or []:
            yield where, item["name"], item.get("value")


def test_every_gateway_variable_set_in_deploy_is_a_setting() -> None:
    names = [(where, name) for where, name, _v in _set_variables() if name.startswith("GATEWAY_")]
    assert names
    unknown = [(where, name) for where, name in names if name not in SETTINGS_VARS]
    assert not unknown, f"the gateway ignores these (not in Settings): {unknown}"


def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("GATEWAY_"):
            monkeypatch.delenv(name)


def test_configmap_and_compose_values_are_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    _clean_env(monkeypatch)
    for where, name, value in _set_variables():
        if not name.startswith("GATEWAY_") or "Secret" in where:
            continue
        assert isinstance(value, str), f"{where}: {name} must be a string, not {value!r}"
        if "${" in value:  # compose interpolation: required from the shell
            assert re.fullmatch(r"\$\{" + name + r":\?[^}]*\}", value), f"{where}: {name}"
            continue
        monkeypatch.setenv(name, value)
        Settings()  # raises on a value the gateway would refuse at start


def test_compose_sets_the_secret_key_for_postgresql() -> None:
    for path in _compose_files():
        doc = _documents(path)[0]
        for name, service in doc["services"].items():
            if not _argv(service.get("command"))[:1] == ["gateway"]:
                continue
            env = service.get("environment") or {}
            url = env.get("GATEWAY_DATABASE_URL", "sqlite")
            if not url.startswith("sqlite"):
                assert "GATEWAY_SECRET_KEY" in env, f"{path.name}:{name}"


def test_the_example_secret_cannot_be_used_as_is(monkeypatch: pytest.MonkeyPatch) -> None:
    _clean_env(monkeypatch)
    (secret,) = [o for _p, o in _k8s_objects() if o["kind"] == "Secret"]
    assert "example" in secret["metadata"]["name"]
    data = secret["stringData"]
    assert all("REPLACE-ME" in data[k] or "example" in data[k] for k in data)
    monkeypatch.setenv("GATEWAY_SECRET_KEY", data["GATEWAY_SECRET_KEY"])
    with pytest.raises(ValidationError, match="secret_key"):
        Settings()


# --- docs ----------------------------------------------------------------------------------


def test_configuration_reference_is_what_configdoc_renders() -> None:
    path = ROOT / "docs" / "configuration.md"
    assert path.read_text(encoding="utf-8") == configdoc.render(), (
        "docs/configuration.md is out of date: run `python -m gateway.configdoc`"
    )


def test_every_setting_has_a_description_and_a_row() -> None:
    text = configdoc.render()
    for name, field in Settings.model_fields.items():
        assert field.description, name
        assert f"| `{configdoc.env_name(name)}` |" in text


def _readme_configuration_table() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(r"^## Configuration\n(.*?)(?=^## )", readme, re.M | re.S)
    assert match, "README.md has no ## Configuration section"
    return "\n".join(line for line in match.group(1).splitlines() if line.startswith("|"))


def test_readme_configuration_table_names_only_real_settings() -> None:
    named = set(VAR_RE.findall(_readme_configuration_table()))
    assert len(named) > 10
    assert not named - SETTINGS_VARS, f"README.md names unknown settings: {named - SETTINGS_VARS}"


@pytest.mark.parametrize("doc", ["operations.md", "receiving.md", "configuration.md"])
def test_docs_name_only_real_settings(doc: str) -> None:
    from gateway.commands.receive import SECRET_ENV  # one command's variable, not a setting
    from gateway.settings import ENV_FILE_VARIABLE  # where the settings are read from

    not_settings = {SECRET_ENV, ENV_FILE_VARIABLE}
    named = set(VAR_RE.findall((ROOT / "docs" / doc).read_text(encoding="utf-8"))) - not_settings
    assert not named - SETTINGS_VARS, f"docs/{doc} names unknown settings: {named - SETTINGS_VARS}"
