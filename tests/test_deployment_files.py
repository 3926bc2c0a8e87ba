"""The deployment files agree with the code: docker-compose.yml, Dockerfile, .env.example, .ci/run, Makefile, README,
deploy/ (the nginx site and the systemd units).

Every command they start must name something that exists (a Django management command, an importable module, the
WSGI application, the Celery app), every environment variable they pass must be one the project reads, and every
variable the settings read must be documented. No database and no Docker engine needed: the files are parsed.
"""

import configparser
import importlib
import importlib.util
import re
import shlex
import shutil
import subprocess
from functools import cache
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
README = ROOT / "README.md"
ENV_EXAMPLE = ROOT / ".env.example"
CI_RUN = ROOT / ".ci" / "run"
RUN_LOCAL = ROOT / "scripts" / "run_local.sh"
NGINX_TEMPLATE = ROOT / "deploy" / "nginx" / "checkout.conf.template"
SYSTEMD_DIR = ROOT / "deploy" / "systemd"

REQUIRED_SERVICES = {"postgres", "redis", "sandbox", "web", "worker", "beat", "nginx"}
# What must come back by itself when it dies (a worker killed by a Redis outage, say); one-shots are not among them.
LONG_RUNNING_SERVICES = {"postgres", "redis", "sandbox", "web", "worker", "beat", "nginx"}
PROJECT_IMAGE_SERVICES_WITHOUT_DJANGO = {"sandbox"}  # runs the project image, but not Django

# env.str("NAME", ...), env.bool("NAME"), env("NAME"), env.db("NAME") ... (django-environ), and the os module's ways.
ENV_READ_PATTERNS = [
    re.compile(r"""\benv(?:\.[a-z_]+)?\(\s*["']([A-Z][A-Z0-9_]*)["']"""),
    re.compile(r"""\bos\.environ(?:\.(?:get|setdefault|pop))?\s*[\[(]\s*["']([A-Z][A-Z0-9_]*)["']"""),
    re.compile(r"""\bos\.getenv\(\s*["']([A-Z][A-Z0-9_]*)["']"""),
]
README_TABLE_ROW = re.compile(r"^\|\s*`([A-Z][A-Z0-9_]*)`\s*\|", re.MULTILINE)
COMPOSE_INTERPOLATION = re.compile(r"\$\{([A-Z][A-Z0-9_]*)(?::?[-?+][^}]*)?\}")


# --- Helpers (also exercised directly below, so a broken checker cannot pass silently) --------------------------------


def env_names_read_in(text: str) -> set[str]:
    return {match for pattern in ENV_READ_PATTERNS for match in pattern.findall(text)}


def env_names_read_by(paths: list[Path]) -> set[str]:
    names: set[str] = set()
    for path in paths:
        names |= env_names_read_in(path.read_text())
    return names


def settings_sources() -> list[Path]:
    return sorted((ROOT / "config" / "settings").glob("*.py"))


def config_sources() -> list[Path]:
    """Everything that configures the process: the settings, config/ (wsgi, celery) and manage.py."""
    return [*sorted((ROOT / "config").rglob("*.py")), ROOT / "manage.py"]


@cache
def django_command_names() -> frozenset[str]:
    from django.core.management import get_commands

    return frozenset(get_commands())


def _split_shell(script: str) -> list[list[str]]:
    """`a && b; c` -> [[a...], [b...], [c...]]: enough shell for the one-liners compose files use."""
    commands = []
    for part in re.split(r"&&|\|\||;", script):
        if part.strip():
            commands.append(shlex.split(part))
    return commands


def _option_value(argv: list[str], *names: str) -> str | None:
    for index, arg in enumerate(argv):
        for name in names:
            if arg == name and index + 1 < len(argv):
                return argv[index + 1]
            if name.startswith("--") and arg.startswith(name + "="):
                return arg.split("=", 1)[1]
            if not name.startswith("--") and arg.startswith(name) and len(arg) > len(name):
                return arg[len(name) :]
    return None


def command_problems(argv: list[str] | str) -> list[str]:
    """What in this command does not exist in the project; [] when everything it names is real."""
    if isinstance(argv, str):
        argv = shlex.split(argv)
    if not argv:
        return ["empty command"]
    program, args = argv[0], argv[1:]
    if program in ("sh", "bash") and args[:1] == ["-c"] and len(args) >= 2:
        return [problem for part in _split_shell(args[1]) for problem in command_problems(part)]
    if program in ("python", "python3"):
        if args[:1] == ["manage.py"]:
            if len(args) < 2:
                return ["manage.py without a subcommand"]
            if args[1] not in django_command_names():
                return [f"`manage.py {args[1]}` is not a Django management command of this project"]
            return []
        if args[:1] == ["-m"] and len(args) >= 2:
            return _runnable_module_problems(args[1])
        if args[:1] == ["-c"]:
            return []  # inline code (healthchecks); it only uses the standard library
        return [f"unrecognised python invocation {argv!r}"]
    if program == "gunicorn":
        return _gunicorn_problems(args)
    if program == "celery":
        return _celery_problems(args)
    return [f"unknown program {program!r}: teach tests/test_deployment_files.py what it needs"]


def _runnable_module_problems(name: str) -> list[str]:
    """`python -m NAME` needs a module, or a package with a __main__ (a bare directory is a namespace package)."""
    try:
        spec = importlib.util.find_spec(name)
    except ImportError:
        spec = None
    if spec is None:
        return [f"`python -m {name}`: no module {name!r}"]
    if spec.submodule_search_locations is not None and importlib.util.find_spec(f"{name}.__main__") is None:
        return [f"`python -m {name}`: package {name!r} has no __main__.py"]
    return []


def _gunicorn_problems(args: list[str]) -> list[str]:
    problems = []
    app_specs = [arg for arg in args if re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*", arg)]
    if len(app_specs) != 1:
        return [f"gunicorn needs exactly one module:attribute application, got {app_specs!r}"]
    module_name, attribute = app_specs[0].split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        problems.append(f"gunicorn: cannot import {module_name!r}: {error}")
    else:
        if not callable(getattr(module, attribute, None)):
            problems.append(f"gunicorn: {module_name!r} has no WSGI callable {attribute!r}")
    workers = _option_value(args, "--workers", "-w")
    if workers != "4":
        problems.append(f"gunicorn must run 4 workers (--workers 4 or -w 4), got {workers!r}")
    if _option_value(args, "--bind", "-b") is None:
        problems.append("gunicorn without --bind listens on 127.0.0.1 only, unreachable from outside the container")
    return problems


def _celery_problems(args: list[str]) -> list[str]:
    from celery import Celery
    from celery.app.utils import find_app

    app_name = _option_value(args, "--app", "-A")
    if app_name is None:
        return ["celery without -A/--app"]
    try:
        app = find_app(app_name)
    except Exception as error:  # find_app raises ImportError or AttributeError subclasses
        return [f"celery -A {app_name}: no Celery application found ({error})"]
    problems = [] if isinstance(app, Celery) else [f"celery -A {app_name} finds {app!r}, not a Celery app"]
    subcommands = [arg for arg in args if arg in ("worker", "beat", "inspect")]
    if not subcommands:
        problems.append(f"celery {' '.join(args)}: no worker/beat/inspect subcommand")
    return problems


def readme_configuration_table() -> set[str]:
    text = README.read_text()
    match = re.search(r"^## Configuration\b.*?(?=^## )", text, re.MULTILINE | re.DOTALL)
    assert match, "README.md has no '## Configuration' section"
    return set(README_TABLE_ROW.findall(match.group(0)))


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    logical, current = [], ""
    for line in DOCKERFILE.read_text().splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        current += stripped
        logical.append(current)
        current = ""
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "") for line in logical]


def _exec_form(arguments: str) -> list[str]:
    import json

    value = json.loads(arguments)
    assert isinstance(value, list) and all(isinstance(item, str) for item in value), arguments
    return value


# --- Fixtures ---------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


def _runs_project_image(service: dict) -> bool:
    return "build" in service


@pytest.fixture(scope="module")
def django_services(services) -> dict:
    return {
        name: service
        for name, service in services.items()
        if _runs_project_image(service) and name not in PROJECT_IMAGE_SERVICES_WITHOUT_DJANGO
    }


def _environment(service: dict) -> dict[str, str]:
    environment = service.get("environment") or {}
    if isinstance(environment, list):  # the ["NAME=value"] form
        environment = dict(item.split("=", 1) if "=" in item else (item, None) for item in environment)
    return environment


# --- The checkers themselves can fail ---------------------------------------------------------------------------------


def test_env_reader_finds_what_settings_read_and_nothing_else():
    source = 'SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="")\nX = os.environ.get("OTHER_NAME")\nenv("BARE")'

    assert env_names_read_in(source) == {"DJANGO_SECRET_KEY", "OTHER_NAME", "BARE"}
    assert "DJANGO_SECRET_KEYS" not in env_names_read_by(config_sources())


@pytest.mark.parametrize(
    "argv",
    [
        ["python", "manage.py", "no_such_command"],
        ["python", "-m", "no_such_module_anywhere"],
        ["python", "-m", "tests"],  # a package without __main__.py
        ["gunicorn", "config.wsgi:no_such_app", "--bind", "0.0.0.0:8000", "--workers", "4"],
        ["gunicorn", "config.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "2"],
        ["celery", "-A", "no_such_package", "worker"],
        ["sh", "-c", "python manage.py migrate && python manage.py no_such_command"],
        ["uwsgi", "--http", ":8000"],
    ],
)
def test_command_checker_rejects_what_does_not_exist(argv):
    assert command_problems(argv)


# --- docker-compose.yml -----------------------------------------------------------------------------------------------


def test_compose_has_the_required_services(services):
    assert set(services) >= REQUIRED_SERVICES, f"missing: {sorted(REQUIRED_SERVICES - set(services))}"


def test_compose_images_of_the_backing_services(services):
    assert services["postgres"]["image"] == "postgres:15"
    assert services["redis"]["image"].split(":")[0] == "redis"
    assert services["redis"]["image"].split(":")[1].startswith("7")
    for name in ("sandbox", "web", "worker", "beat"):
        assert _runs_project_image(services[name]), f"{name} must run the project image (build: .)"


@pytest.mark.parametrize("name", [*sorted(REQUIRED_SERVICES - {"postgres", "redis", "nginx"}), "migrate", "static"])
def test_compose_command_names_only_real_things(services, name):
    if name not in services:
        pytest.skip(f"no {name} service")
    command = services[name].get("command")
    assert command, f"{name} must state its command"

    assert command_problems(command) == []


def test_compose_commands_are_the_expected_processes(services):
    def argv(name):
        command = services[name]["command"]
        return shlex.split(command) if isinstance(command, str) else command

    assert argv("sandbox")[:3] == ["python", "-m", "stripe_sandbox"]
    assert _option_value(argv("sandbox"), "--host") == "0.0.0.0"
    assert _option_value(argv("sandbox"), "--port") == "12111"
    assert _option_value(argv("sandbox"), "--public-url") == "http://localhost:12111"
    assert argv("web")[:2] == ["gunicorn", "config.wsgi:application"]
    assert _option_value(argv("web"), "--bind", "-b") == "0.0.0.0:8000"
    assert argv("worker")[:4] == ["celery", "-A", "config", "worker"]
    assert argv("beat")[:4] == ["celery", "-A", "config", "beat"]


def test_compose_web_starts_after_migrations(services):
    """Whatever runs `manage.py migrate` must have finished before web, worker and beat start."""
    migrating = [name for name, service in services.items() if "manage.py migrate" in str(service.get("command", ""))]
    assert migrating, "no service runs `manage.py migrate`"
    for name in ("web", "worker", "beat"):
        depends_on = services[name].get("depends_on") or {}
        assert any(
            isinstance(depends_on, dict)
            and depends_on.get(dep, {}).get("condition") == "service_completed_successfully"
            for dep in migrating
        ), f"{name} must depend on {migrating} with condition service_completed_successfully"


def test_compose_dependencies_exist_and_health_conditions_have_healthchecks(services):
    for name, service in services.items():
        depends_on = service.get("depends_on") or {}
        assert isinstance(depends_on, dict), f"{name}: use the long depends_on form with conditions"
        for dependency, spec in depends_on.items():
            assert dependency in services, f"{name} depends on unknown service {dependency}"
            condition = spec.get("condition")
            assert condition in {"service_started", "service_healthy", "service_completed_successfully"}, condition
            if condition == "service_healthy":
                assert "healthcheck" in services[dependency], (
                    f"{name} waits for {dependency} to be healthy, but {dependency} has no healthcheck"
                )


def test_compose_healthchecks_of_the_long_running_services(services):
    for name in ("postgres", "redis", "sandbox", "web", "nginx"):
        assert services[name].get("healthcheck", {}).get("test"), f"{name} needs a healthcheck"
    for name in ("web", "nginx"):
        assert re.search(r"/api/(health|ready)/", str(services[name]["healthcheck"]["test"])), name
    assert "/_sandbox/health" in str(services["sandbox"]["healthcheck"]["test"])


def test_compose_passes_django_only_variables_the_project_reads(django_services):
    read = env_names_read_by(config_sources())
    for name, service in django_services.items():
        unknown = set(_environment(service)) - read
        assert not unknown, f"{name} passes {sorted(unknown)}, which nothing in config/ or manage.py reads"


def test_compose_django_services_run_production_settings_against_the_sandbox(django_services):
    assert {"web", "worker", "beat"} <= set(django_services)
    for name, service in django_services.items():
        environment = _environment(service)
        assert environment.get("DJANGO_SETTINGS_MODULE") == "config.settings.production", name
        assert importlib.util.find_spec(environment["DJANGO_SETTINGS_MODULE"]) is not None
        assert environment.get("STRIPE_API_BASE", "").endswith("http://sandbox:12111}"), name
        assert environment.get("DJANGO_SECURE_SSL_REDIRECT", "").endswith(":-false}"), name
        for required in ("DJANGO_SECRET_KEY", "DJANGO_ALLOWED_HOSTS", "DATABASE_URL", "REDIS_URL", "STRIPE_SECRET_KEY"):
            assert environment.get(required), f"{name} lacks {required}, which production needs"


def test_compose_interpolated_variables_are_the_ones_in_env_example():
    interpolated = set(COMPOSE_INTERPOLATION.findall(COMPOSE_FILE.read_text()))
    listed = set(re.findall(r"^([A-Z][A-Z0-9_]*)=", ENV_EXAMPLE.read_text(), re.MULTILINE))

    assert interpolated == listed, (
        f"only in docker-compose.yml: {sorted(interpolated - listed)}; "
        f"only in .env.example: {sorted(listed - interpolated)}"
    )


# --- The edge: nginx in front of gunicorn (compose, deploy/nginx) -----------------------------------------------------


def _published(service: dict) -> list[tuple[str, str]]:
    """(host port, container port) of each `ports` entry ("8000:8000", "127.0.0.1:8000:8000" or "8000")."""
    pairs = []
    for entry in service.get("ports") or []:
        parts = str(entry).split(":")
        pairs.append((parts[-2] if len(parts) > 1 else parts[-1], parts[-1]))
    return pairs


def nginx_directives(text: str) -> dict[str, list[tuple[str, str]]]:
    """{location ("" for the server level): [(directive, arguments)]}: enough of nginx's grammar for our one file."""
    found: dict[str, list[tuple[str, str]]] = {}
    context = ""
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if line.startswith("location "):
            context = line.removeprefix("location ").removesuffix("{").strip()
        elif line == "}":
            context = ""
        elif line.endswith(";"):
            name, _, arguments = line[:-1].partition(" ")
            found.setdefault(context, []).append((name, arguments.strip()))
    return found


def _nginx_size(value: str) -> int:
    units = {"k": 1024, "m": 1024 * 1024}
    return int(value[:-1]) * units[value[-1].lower()] if value[-1].lower() in units else int(value)


def _directive(directives: dict, context: str, name: str) -> list[str]:
    return [arguments for directive, arguments in directives.get(context, []) if directive == name]


@pytest.fixture(scope="module")
def nginx_site() -> dict:
    return nginx_directives(NGINX_TEMPLATE.read_text())


def test_nginx_directive_reader_sees_locations_and_comments():
    text = "client_max_body_size 1m;  # a comment; with a semicolon\nlocation = /a {\n    return 404;\n}\nx y;\n"

    assert nginx_directives(text) == {"": [("client_max_body_size", "1m"), ("x", "y")], "= /a": [("return", "404")]}


def test_compose_publishes_nginx_and_keeps_gunicorn_inside(services):
    """The API's port (8000, as README's URLs say) is nginx's; gunicorn has none on the host."""
    assert not services["web"].get("ports"), "gunicorn must not be published: nginx is the one way in"
    published = _published(services["nginx"])
    assert ("8000", services["nginx"]["environment"]["NGINX_LISTEN"]) in published
    web_port = _option_value(services["web"]["command"], "--bind", "-b").rsplit(":", 1)[1]
    assert services["nginx"]["environment"]["NGINX_UPSTREAM"] == f"web:{web_port}"
    assert services["nginx"]["image"].split(":")[0] == "nginx", "the official image renders /etc/nginx/templates/"


def test_compose_nginx_renders_the_shipped_template_with_every_placeholder_filled(services):
    nginx = services["nginx"]
    mounts = {volume.split(":")[1]: volume.split(":")[0] for volume in nginx["volumes"]}
    placeholders = set(re.findall(r"\$\{([A-Z_]+)\}", NGINX_TEMPLATE.read_text()))

    assert mounts.get(f"/etc/nginx/templates/{NGINX_TEMPLATE.name}") == "./deploy/nginx/" + NGINX_TEMPLATE.name
    assert placeholders and placeholders <= set(nginx["environment"]), placeholders - set(nginx["environment"])
    assert all(re.match(nginx["environment"]["NGINX_ENVSUBST_FILTER"], name) for name in placeholders)


def test_compose_static_files_reach_nginx_through_one_volume(services):
    """`static` collects into a named volume (DJANGO_STATIC_ROOT) that nginx serves /static/ from, once it is done."""
    static, nginx = services["static"], services["nginx"]
    static_root = _environment(static)["DJANGO_STATIC_ROOT"]
    collect_volume = next(v.split(":")[0] for v in static["volumes"] if v.split(":")[1] == static_root)
    serve_volume = next(
        v.split(":")[0] for v in nginx["volumes"] if v.split(":")[1] == nginx["environment"]["NGINX_STATIC_ROOT"]
    )

    assert "collectstatic" in static["command"]
    assert collect_volume == serve_volume
    assert nginx["depends_on"]["static"]["condition"] == "service_completed_successfully"
    assert any(
        instruction == "RUN" and static_root in arguments and "app" in arguments
        for instruction, arguments in dockerfile_instructions()
    ), f"the image must give {static_root} to the app user, or collectstatic cannot write into the new volume"


def test_compose_trusts_exactly_one_proxy(django_services):
    for name, service in django_services.items():
        assert _environment(service).get("DJANGO_NUM_PROXIES", "").endswith(":-1}"), name


def test_compose_long_running_services_come_back_by_themselves(services):
    for name in LONG_RUNNING_SERVICES:
        assert services[name].get("restart") == "unless-stopped", f"{name} must restart: unless-stopped"


def test_nginx_body_limits_are_django_s(nginx_site):
    from django.conf import settings
    from django.urls import reverse

    create_session = f"= {reverse('checkout:create-session')}"

    assert [_nginx_size(v) for v in _directive(nginx_site, "", "client_max_body_size")] == [
        settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    ]
    assert [_nginx_size(v) for v in _directive(nginx_site, create_session, "client_max_body_size")] == [
        settings.CHECKOUT_MAX_BODY_BYTES
    ]


def test_nginx_buffers_and_sets_the_client_address_as_the_one_proxy(nginx_site):
    server = dict(nginx_site[""])
    headers = dict(value.split(" ", 1) for value in _directive(nginx_site, "", "proxy_set_header"))

    assert server["proxy_request_buffering"] == "on" and server["proxy_buffering"] == "on"
    assert headers["X-Forwarded-For"] == "$remote_addr", "overwrite the client's header, never append to it"
    assert headers["X-Forwarded-Proto"] == "$scheme"
    assert headers["X-Request-ID"] == "$request_id"
    for timeout in ("client_header_timeout", "client_body_timeout", "send_timeout", "keepalive_timeout"):
        assert int(server[timeout].removesuffix("s")) <= 15, timeout
    assert _directive(nginx_site, "", "limit_conn")
    assert _directive(nginx_site, "/static/", "alias") == ["${NGINX_STATIC_ROOT}/"]
    proxied = {context for context, directives in nginx_site.items() if any(d == "proxy_pass" for d, _ in directives)}
    assert {"/", "= /api/health/", "= /api/ready/"} <= proxied


# --- deploy/systemd ---------------------------------------------------------------------------------------------------


def _unit(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # systemd's keys are case-sensitive
    parser.read_string(path.read_text())
    return parser


@pytest.mark.parametrize(
    "name,program", [("checkout-web", "gunicorn"), ("checkout-worker", "celery"), ("checkout-beat", "celery")]
)
def test_systemd_units_restart_run_unprivileged_and_name_real_things(name, program):
    service = _unit(SYSTEMD_DIR / f"{name}.service")["Service"]
    argv = shlex.split(service["ExecStart"])
    argv[0] = Path(argv[0]).name

    assert service["Restart"] == "always"
    assert float(service["RestartSec"]) > 0
    assert service.get("User") not in (None, "", "root", "0")
    assert service["EnvironmentFile"]
    assert argv[0] == program
    assert command_problems(argv) == []


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_accepts_the_units():
    units = sorted(str(path) for path in SYSTEMD_DIR.glob("*.service"))

    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *units], capture_output=True, text=True, timeout=60
    )

    # The programs live on the production host, not here; anything else systemd says is a mistake in a unit.
    complaints = [line for line in result.stderr.splitlines() if line.strip() and "is not executable" not in line]
    assert complaints == [], complaints


def test_systemd_gunicorn_listens_where_the_nginx_site_points():
    argv = shlex.split(_unit(SYSTEMD_DIR / "checkout-web.service")["Service"]["ExecStart"])

    bind = _option_value(argv, "--bind", "-b")

    assert bind.startswith("127.0.0.1:"), "on a host, only nginx may reach gunicorn"
    assert f"NGINX_UPSTREAM={bind}" in README.read_text(), "README's nginx site must point at the unit's gunicorn"


# --- Dockerfile -------------------------------------------------------------------------------------------------------


def test_dockerfile_base_image_and_non_root_user():
    instructions = dockerfile_instructions()
    assert instructions[0] == ("FROM", "python:3.11-slim")
    users = [arguments for instruction, arguments in instructions if instruction == "USER"]
    assert users and users[-1] not in ("root", "0"), "the image must end on a non-root USER"
    assert any(
        instruction == "RUN" and "pip install -r requirements.txt" in arguments
        for instruction, arguments in instructions
    )


def test_dockerfile_cmd_and_entrypoint_name_only_real_things():
    instructions = dockerfile_instructions()
    entry = [_exec_form(arguments) for instruction, arguments in instructions if instruction == "ENTRYPOINT"]
    cmd = [_exec_form(arguments) for instruction, arguments in instructions if instruction == "CMD"]
    assert cmd or entry, "the Dockerfile has neither CMD nor ENTRYPOINT"

    argv = (entry[-1] if entry else []) + (cmd[-1] if cmd else [])
    assert command_problems(argv) == []


def test_dockerfile_manage_py_commands_exist_and_env_is_read():
    instructions = dockerfile_instructions()
    manage_commands = [
        match
        for instruction, arguments in instructions
        if instruction == "RUN"
        for match in re.findall(r"manage\.py\s+([a-z_]+)", arguments)
    ]
    assert "collectstatic" in manage_commands
    assert set(manage_commands) <= django_command_names()
    env_names = {
        name
        for instruction, arguments in instructions
        if instruction == "ENV"
        for name in re.findall(r"(?:^|\s)([A-Z][A-Z0-9_]*)=", arguments)
    }
    project_names = {name for name in env_names if not name.startswith(("PYTHON", "PIP_"))}
    assert project_names <= env_names_read_by(config_sources())


# --- README -----------------------------------------------------------------------------------------------------------


def test_readme_documents_every_variable_the_settings_read():
    read = env_names_read_by(config_sources())
    documented = readme_configuration_table()

    assert not read - documented, f"read but missing from README's configuration table: {sorted(read - documented)}"


def test_readme_documents_only_variables_that_are_read():
    read = env_names_read_by(config_sources())
    documented = readme_configuration_table()

    assert not documented - read, f"in README's configuration table but read nowhere: {sorted(documented - read)}"


def test_readme_mentions_every_variable_any_module_reads():
    """Apps, the sandbox and the tests may read variables of their own (STRIPE_FIXTURES ...): README names them."""
    sources = [
        path
        for path in ROOT.rglob("*.py")
        if not {".venv", "migrations", "node_modules"} & set(path.relative_to(ROOT).parts)
        and path != Path(__file__).resolve()
    ]
    text = README.read_text()

    missing = sorted(name for name in env_names_read_by(sources) if f"`{name}`" not in text)

    assert not missing, f"read by the code but not mentioned in README.md: {missing}"


def test_readme_s_first_commands_are_make_run_and_make_test_and_make_knows_them():
    # The first code block a newcomer meets: its commands, each dry-run by make (a renamed target fails here).
    first_block = re.search(r"```(?:sh|bash)\n(.*?)```", README.read_text(), re.DOTALL).group(1)
    commands = [line.split("#")[0].strip() for line in first_block.splitlines() if line.strip()]

    assert commands == ["make run", "make test"]
    for command in commands:
        dry_run = subprocess.run([*shlex.split(command), "-n"], cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert dry_run.returncode == 0, dry_run.stderr


# --- CI, Makefile, scripts --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "runs"),
    [("test", "-m pytest"), ("lint", "ruff check ."), ("run", "scripts/run_local.sh")],
)
def test_make_knows_each_target_and_what_it_runs(target, runs):
    # make's own dry run (it reads the Makefile as make does, prerequisites and all), not a search of its text.
    dry_run = subprocess.run(["make", "-n", target], cwd=ROOT, capture_output=True, text=True, timeout=60)

    assert dry_run.returncode == 0, dry_run.stderr
    assert runs in dry_run.stdout


@pytest.mark.parametrize("script", [CI_RUN, RUN_LOCAL], ids=lambda path: path.name)
def test_shell_scripts_parse_and_stop_on_errors(script):
    assert "set -euo pipefail" in script.read_text()

    result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)

    assert result.returncode == 0, result.stderr
