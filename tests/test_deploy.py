"""The deployment files in deploy/: (a) the nginx template, rendered as the official nginx image would and run with the
system nginx in front of the real service; (b) static checks that compose.yaml, the Dockerfile and the nginx template
agree with the application (settings names, commands, queue, health paths, upload limit)."""

from __future__ import annotations

import json
import os
import pwd
import re
import shlex
import string
import subprocess
import time
import uuid
from pathlib import Path

import httpx
import pytest
import yaml

from testkit.processes import free_port

pytestmark = pytest.mark.xdist_group("service")

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
TEMPLATE = DEPLOY / "nginx" / "plant-disease.conf.template"
COMPOSE = DEPLOY / "compose.yaml"
DOCKERFILE = DEPLOY / "Dockerfile"
NGINX = Path(os.environ.get("NGINX_BIN", "/usr/sbin/nginx"))
SUBJECT = "deploy-test"


def render_template(text: str, **env) -> str:
    "What the nginx image's entrypoint does (envsubst of the variables that are set), with string.Template."
    out = string.Template(text).safe_substitute(env)
    left = set(re.findall(r"\$\{(\w+)\}", out))
    assert not left, f"template variables not set: {left}"
    return out


def size_bytes(v: str) -> int:
    "An nginx size (12m, 512k, 1g, 1048576) in bytes."
    m = re.fullmatch(r"(\d+)([kKmMgG]?)", v)
    assert m, f"not an nginx size: {v!r}"
    return int(m[1]) * {"": 1, "k": 2**10, "m": 2**20, "g": 2**30}[m[2].lower()]


def settings_defaults() -> dict:
    from app.config import Settings

    return {name: f.default for name, f in Settings.model_fields.items()}


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def as_argv(cmd) -> list[str]:
    return list(map(str, cmd)) if isinstance(cmd, list) else shlex.split(cmd)


def dockerfile_instructions() -> list[tuple[str, str]]:
    "(INSTRUCTION, arguments) with line continuations joined and comments dropped."
    text = re.sub(
        r"\\\n", " ", "\n".join(l for l in DOCKERFILE.read_text().splitlines() if not l.lstrip().startswith("#"))
    )
    return [(m[1].upper(), m[2].strip()) for m in re.finditer(r"^\s*([A-Za-z]+)\s+(.*)$", text, re.M)]


def dockerfile_cmd() -> list[str]:
    cmd = [a for i, a in dockerfile_instructions() if i == "CMD"][-1]
    return json.loads(cmd) if cmd.startswith("[") else shlex.split(cmd)


# ---------------------------------------------------------------------------------------------------------------
# (a) nginx in front of the real service

MAIN_CONF = """\
# A minimal main config around the rendered template (what the nginx image's nginx.conf provides).
{user}
worker_processes 1;
pid {tmp}/nginx.pid;
error_log stderr notice;

events {{ worker_connections 256; }}

http {{
    default_type application/octet-stream;
    types {{
        text/html html; text/css css; application/javascript js; application/json json;
        image/png png; image/jpeg jpg jpeg; image/webp webp;
    }}
    log_format main '$remote_addr "$request" $status $body_bytes_sent rid=$pd_request_id rt=$request_time';
    access_log {tmp}/access.log main;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    include {tmp}/conf.d/*.conf;
}}
"""


@pytest.fixture(scope="module")
def nginx(service, tmp_path_factory):
    "The system nginx with the rendered template, proxying to the running service; yields its base URL."
    if not NGINX.exists():
        pytest.skip(f"{NGINX} not found (apt-get install nginx): the nginx template is only checked statically")
    tmp = tmp_path_factory.mktemp("nginx")
    port = free_port()
    (tmp / "conf.d").mkdir()
    (tmp / "conf.d" / "default.conf").write_text(
        render_template(TEMPLATE.read_text(), NGINX_PORT=str(port), API_UPSTREAM=f"127.0.0.1:{service.port}")
    )
    # as root, nginx's workers would run as `nobody` and could not use the temp dirs in this private tmp folder
    user = f"user {pwd.getpwuid(os.geteuid()).pw_name};" if os.geteuid() == 0 else ""
    (tmp / "nginx.conf").write_text(MAIN_CONF.format(tmp=tmp, user=user))
    base = [str(NGINX), "-p", str(tmp), "-c", str(tmp / "nginx.conf"), "-e", "stderr"]

    t = subprocess.run([*base, "-t"], capture_output=True, text=True, timeout=30)
    assert t.returncode == 0 and "syntax is ok" in t.stderr, f"nginx -t failed:\n{t.stderr}"

    log = tmp / "nginx.log"
    proc = subprocess.Popen([*base, "-g", "daemon off;"], stdout=log.open("w"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    end = time.monotonic() + 20
    while True:
        if proc.poll() is not None:
            pytest.fail(f"nginx exited {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > end:
            pytest.fail(f"nginx did not answer /health in 20 s:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)
    yield type("Nginx", (), {"url": url, "port": port, "dir": tmp, "log": log, "access_log": tmp / "access.log"})
    proc.terminate()  # SIGTERM: fast shutdown
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def auth(service) -> dict:
    return {"Authorization": f"Bearer {service.token(SUBJECT)}"}


def test_nginx_template_renders_and_passes_nginx_t(nginx):
    "The fixture ran `nginx -t` on the rendered template; the rendered file keeps nginx's own $variables."
    conf = (nginx.dir / "conf.d" / "default.conf").read_text()
    assert f"listen {nginx.port};" in conf and "$proxy_add_x_forwarded_for" in conf and "$pd_request_id" in conf


def test_health_docs_and_schema_through_nginx(nginx):
    r = httpx.get(f"{nginx.url}/health", timeout=10)
    assert r.status_code == 200 and r.json() == {"status": "ok"}
    r = httpx.get(f"{nginx.url}/docs", timeout=10)
    assert r.status_code == 200 and "swagger" in r.text.lower()
    r = httpx.get(f"{nginx.url}/openapi.json", timeout=10)
    assert r.status_code == 200 and "/predict" in r.json()["paths"] and "/predict/async" in r.json()["paths"]
    r = httpx.get(f"{nginx.url}/ready", timeout=10)
    assert r.status_code == 200 and r.json()["ready"] is True


def test_predict_through_nginx_keeps_the_request_id(nginx, service):
    "A real photo with a token: 200, and the X-Request-ID we send reaches the API (its logs, the body) and comes back."
    rid = uuid.uuid4().hex
    photo = service.leaf_photos[0]
    r = httpx.post(
        f"{nginx.url}/predict",
        files={"file": (photo.name, photo.read_bytes(), "image/jpeg")},
        headers={**auth(service), "X-Request-ID": rid},
        timeout=60,
    )
    assert r.status_code == 200, r.text
    assert r.headers.get_list("X-Request-ID") == [rid], r.headers.get_list("X-Request-ID")
    body = r.json()
    assert body["request_id"] == rid and body["label"] in service.classes
    end = time.monotonic() + 10  # nginx writes the access line after the response has gone
    while f"rid={rid}" not in nginx.access_log.read_text() and time.monotonic() < end:
        time.sleep(0.1)
    assert f"rid={rid}" in nginx.access_log.read_text()

    # no id from the caller: nginx makes one, and the API uses that same one
    r = httpx.post(
        f"{nginx.url}/predict",
        files={"file": (photo.name, photo.read_bytes(), "image/jpeg")},
        headers=auth(service),
        timeout=60,
    )
    assert r.status_code == 200, r.text
    made = r.headers.get_list("X-Request-ID")
    assert len(made) == 1 and re.fullmatch(r"[0-9a-f]{32}", made[0]) and r.json()["request_id"] == made[0], made


def test_client_address_and_api_errors_pass_through(nginx, service):
    "The API (trusting proxy headers from 127.0.0.1) logs the real client from X-Forwarded-For; its errors pass unchanged."
    rid = uuid.uuid4().hex
    r = httpx.get(f"{nginx.url}/health", headers={"X-Request-ID": rid, "X-Forwarded-For": "203.0.113.7"}, timeout=10)
    assert r.status_code == 200 and r.headers["X-Request-ID"] == rid
    api_log = getattr(service, "api_log", None)
    if api_log is not None:
        line, end = None, time.monotonic() + 5
        while line is None and time.monotonic() < end:
            line = next(
                (
                    json.loads(l)
                    for l in Path(api_log).read_text().splitlines()
                    if rid in l and '"path": "/health"' in l
                ),
                None,
            )
            time.sleep(0.1)
        assert line is not None, f"no access-log line for request {rid} in {api_log}"
        assert line["client"] == "203.0.113.7", line
    # a 401 through nginx is the API's JSON, unchanged
    r = httpx.post(f"{nginx.url}/predict", files={"file": ("a.jpg", b"x", "image/jpeg")}, timeout=10)
    assert r.status_code == 401 and r.json()["detail"] == "missing bearer token"
    assert r.headers.get("WWW-Authenticate") == "Bearer"


def test_nginx_refuses_13_mb_before_the_api(nginx, service):
    "A 13 MB upload is over client_max_body_size: nginx answers 413 itself, as JSON with a request id."
    blob = b"\xff\xd8\xff\xe0" + os.urandom(13_000_000 - 4)
    try:
        r = httpx.post(
            f"{nginx.url}/predict", files={"file": ("big.jpg", blob, "image/jpeg")}, headers=auth(service), timeout=60
        )
    except httpx.HTTPError as e:  # nginx answers before reading the body; a client may see the reset first
        pytest.fail(f"no 413 answer from nginx for a 13 MB body: {type(e).__name__}: {e}")
    assert r.status_code == 413, r.text[:300]
    assert "proxy limit" in r.json()["detail"], r.text  # nginx's own answer, not the API's
    assert len(r.headers.get_list("X-Request-ID")) == 1
    # logged as nginx's 413 once nginx has finished with the connection (it reads and drops the rest of the body)
    end = time.monotonic() + 10
    while f'"POST /predict HTTP/1.1" 413 ' not in nginx.access_log.read_text() and time.monotonic() < end:
        time.sleep(0.2)
    assert f'"POST /predict HTTP/1.1" 413 ' in nginx.access_log.read_text()


def test_the_api_limit_applies_below_nginx_limit(nginx, service):
    "Between the API's 10 MiB and nginx's 12 MiB, the API's own 413 (naming its limit) passes through."
    limit = int(service.env.get("PD_MAX_UPLOAD_BYTES", settings_defaults()["max_upload_bytes"]))
    blob = b"\xff\xd8\xff\xe0" + os.urandom(limit + 100_000)
    r = httpx.post(
        f"{nginx.url}/predict", files={"file": ("big.jpg", blob, "image/jpeg")}, headers=auth(service), timeout=60
    )
    assert r.status_code == 413 and f"{limit:,}" in r.json()["detail"], r.text[:300]


def test_metrics_only_from_local_and_private_addresses(nginx):
    r = httpx.get(f"{nginx.url}/metrics", timeout=10)
    assert r.status_code == 200 and "plant_disease_" in r.text
    # 127.0.0.2 is this host too, but not an allowed address: nginx must refuse it
    try:
        with httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.2")) as c:
            r = c.get(f"{nginx.url}/metrics", timeout=10)
    except httpx.ConnectError as e:
        pytest.skip(f"cannot connect from 127.0.0.2 here: {e}")
    assert r.status_code == 403, r.text[:200]


def test_static_files_are_cacheable_through_nginx(nginx):
    r = httpx.get(f"{nginx.url}/static/app.js", timeout=10)
    assert r.status_code == 200 and "max-age=3600" in r.headers.get("Cache-Control", "")
    r = httpx.get(f"{nginx.url}/", timeout=10)
    assert r.status_code == 200 and 'id="submit"' in r.text


# ---------------------------------------------------------------------------------------------------------------
# (b) static consistency of deploy/ with the application


def test_compose_names_only_real_settings():
    "Every PD_* variable named in compose.yaml and the Dockerfile (comments included) is a field of app.config.Settings."
    from app.config import Settings

    assert Settings.model_config["env_prefix"] == "PD_"
    fields = set(Settings.model_fields)
    named = set(re.findall(r"\bPD_[A-Z0-9_]+\b", COMPOSE.read_text() + DOCKERFILE.read_text()))
    assert named, "compose.yaml sets no PD_* variables"
    unknown = sorted(n for n in named if n[3:].lower() not in fields)
    assert not unknown, f"not settings of the app (typo?): {unknown}; known: {sorted(fields)}"


def test_compose_env_is_valid_for_the_app():
    "The api/worker environment, with a JWT secret as from secrets.env, builds a valid Settings."
    from app.config import Settings

    c = compose()
    for name in ("api", "worker"):
        env = c["services"][name]["environment"]
        assert "PD_JWT_SECRET" not in env, "the JWT secret belongs in the env file, not in compose.yaml"
        assert env["PD_REDIS_URL"] == "redis://redis:6379/0" and env["PD_TRACKING_URI"] == "http://mlflow:5000"
        kwargs = {k[3:].lower(): v for k, v in env.items() if k.startswith("PD_")}
        s = Settings(**kwargs, jwt_secret="f" * 64, _env_file=None)
        assert s.redis_url == "redis://redis:6379/0" and s.variants and s.database_url.startswith("sqlite:")
        assert c["services"][name]["env_file"], f"{name}: no env_file for PD_JWT_SECRET"
    pd = lambda env: {k: v for k, v in env.items() if k.startswith("PD_")}
    assert pd(c["services"]["api"]["environment"]) == pd(c["services"]["worker"]["environment"])


def test_api_trusts_proxy_headers_from_nginx_only():
    "FORWARDED_ALLOW_IPS (read by `python -m app`) names the compose network nginx is on, not the whole internet."
    import ipaddress

    c = compose()
    assert "FORWARDED_ALLOW_IPS" in (ROOT / "app" / "__main__.py").read_text()
    trusted = c["services"]["api"]["environment"]["FORWARDED_ALLOW_IPS"]
    assert trusted != "*"
    subnets = [ipaddress.ip_network(s["subnet"]) for s in c["networks"]["default"]["ipam"]["config"]]
    assert all(any(ipaddress.ip_network(t.strip()).subnet_of(n) for n in subnets) for t in trusted.split(",")), (
        trusted,
        subnets,
    )
    assert "ports" not in c["services"]["api"], "the API must be reached through nginx only"


def test_commands_match_the_app():
    c = compose()["services"]
    api = as_argv(c["api"]["command"])
    assert api[:3] == ["python", "-m", "app"] and "--host" in api and api[api.index("--host") + 1] == "0.0.0.0", api
    cmd = dockerfile_cmd()
    assert cmd[:3] == ["python", "-m", "app"] and cmd[cmd.index("--port") + 1] == "8000", cmd

    worker = as_argv(c["worker"]["command"])
    assert worker[:4] == ["celery", "-A", "app.worker", "worker"], worker
    queue = worker[worker.index("-Q") + 1] if "-Q" in worker else worker[worker.index("--queues") + 1]
    default = settings_defaults()["queue"]
    assert queue == default, f"the worker consumes {queue!r} but the API queues on {default!r}"
    assert c["worker"]["environment"].get("PD_QUEUE", default) == queue
    # the app's entry points exist
    assert (ROOT / "app" / "__main__.py").is_file() and (ROOT / "app" / "worker.py").is_file()
    assert "celery_app" in (ROOT / "app" / "worker.py").read_text()


def test_healthchecks_probe_real_routes():
    "The Dockerfile HEALTHCHECK and the api/nginx healthchecks call paths the app serves (/health, /ready)."
    from app.config import Settings
    from app.main import create_app

    app = create_app(Settings(require_auth=False, _env_file=None))
    # the documented paths, and the app's own routes (newer FastAPI keeps included routers' routes inside them)
    paths = set(app.openapi()["paths"]) | {getattr(r, "path", None) for r in app.routes}
    c = compose()["services"]
    probes = {
        "Dockerfile": " ".join(a for i, a in dockerfile_instructions() if i == "HEALTHCHECK"),
        "api": json.dumps(c["api"]["healthcheck"]["test"]),
        "nginx": json.dumps(c["nginx"]["healthcheck"]["test"]),
    }
    found = set()
    for where, text in probes.items():
        urls = re.findall(r"http://(?:127\.0\.0\.1|localhost)(?::\d+)?(/[\w/.-]*)", text)
        assert urls, f"{where}: no HTTP probe in {text}"
        for p in urls:
            assert p in paths, f"{where} probes {p}, which the app does not serve ({sorted(x for x in paths if x)})"
        found |= set(urls)
    assert {"/health", "/ready"} <= found, found
    assert "/health" in probes["Dockerfile"] and "/ready" in probes["api"]


def test_nginx_allows_more_than_the_api():
    "nginx's client_max_body_size is above the API's per-request limit (so the API's clearer 413 is the usual one)."
    text = TEMPLATE.read_text()
    sizes = re.findall(r"^\s*client_max_body_size\s+(\w+)\s*;", text, re.M)
    assert sizes == ["12m"], sizes
    api_limit = settings_defaults()["max_upload_bytes"]
    assert size_bytes(sizes[0]) > api_limit
    env_limit = compose()["services"]["api"]["environment"].get("PD_MAX_UPLOAD_BYTES")
    if env_limit:
        assert size_bytes(sizes[0]) > int(env_limit)
    assert re.search(r"#.*10 MiB", text), "say in a comment why nginx's limit is what it is"


def test_nginx_template_and_compose_fit_together():
    "The template uses exactly the variables compose gives nginx, and is mounted where the nginx image renders it."
    text = TEMPLATE.read_text()
    used = set(re.findall(r"\$\{(\w+)\}", text))
    assert used == {"NGINX_PORT", "API_UPSTREAM"}, used
    n = compose()["services"]["nginx"]
    assert str(n["image"]).startswith("nginx:1.27")
    assert set(n["environment"]) >= used
    mounts = [str(v).split(":") for v in n["volumes"]]
    assert any(
        m[0].endswith("nginx/plant-disease.conf.template") and m[1] == "/etc/nginx/templates/default.conf.template"
        for m in mounts
    ), mounts
    assert (COMPOSE.parent / "nginx" / "plant-disease.conf.template").is_file()
    host, port = n["environment"]["API_UPSTREAM"].split(":")
    api = as_argv(compose()["services"]["api"]["command"])
    assert host == "api" and port == api[api.index("--port") + 1]
    for header in ("Host", "X-Forwarded-For", "X-Forwarded-Proto", "X-Request-ID"):
        assert re.search(rf"proxy_set_header\s+{header}\s", text), f"nginx does not pass {header}"
    metrics = re.search(r"location = /metrics \{(.*?)\}", text, re.S)[1]
    assert "allow 127.0.0.1;" in metrics and "deny all;" in metrics


def test_compose_services_and_volumes():
    c = compose()
    s = c["services"]
    assert set(s) >= {"api", "worker", "redis", "nginx", "mlflow"}
    assert str(s["redis"]["image"]).startswith("redis:7")
    mlflow = as_argv(s["mlflow"]["command"])
    assert mlflow[:2] == ["mlflow", "server"] and any("5000" in a for a in mlflow), mlflow
    assert any(str(v).split(":")[0] in c["volumes"] for v in s["mlflow"]["volumes"]), "mlflow keeps no volume"
    assert any(str(v).split(":")[0] in c["volumes"] and str(v).split(":")[1] == "/data" for v in s["api"]["volumes"])
    assert s["api"]["volumes"] == s["worker"]["volumes"], "api and workers must share the SQLite volume"
    assert "mssql+pyodbc://" in COMPOSE.read_text(), "no SQL Server example for PD_DATABASE_URL"


def test_dockerfile():
    ins = dockerfile_instructions()
    frm = [a for i, a in ins if i == "FROM"]
    assert len(frm) == 1 and frm[0].startswith("python:3.11-slim"), frm
    runs = " ".join(a for i, a in ins if i == "RUN")
    assert "unixodbc" in runs and "msodbcsql18" in runs and "ACCEPT_EULA=Y" in runs
    assert 'pip install -c constraints.txt ".[serve]"' in runs
    from configparser import ConfigParser

    cfg = ConfigParser(delimiters=["="])
    cfg.read(ROOT / "settings.ini")
    assert cfg["DEFAULT"].get("serve_requirements"), "setup.py's [serve] extra is empty"
    assert '"serve"' in (ROOT / "setup.py").read_text()
    users = [a for i, a in ins if i == "USER"]
    assert users and users[-1] not in ("root", "0"), users
    copies = " ".join(a for i, a in ins if i == "COPY")
    for needed in ("setup.py", "settings.ini", "README.md", "constraints.txt", "plant_disease", "app/"):
        assert needed in copies, f"the image does not get {needed}"
        assert (ROOT / needed.rstrip("/")).exists()
    assert any(i == "HEALTHCHECK" and "/health" in a for i, a in ins)
