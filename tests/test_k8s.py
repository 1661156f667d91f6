"""The Kubernetes manifests in deploy/k8s: (a) every object validates strictly (unknown fields are errors) against the
Kubernetes JSON schemas that `kubernetes-validate` ships, offline, for a fixed Kubernetes version; (b) static checks
that they agree with the tested service and with deploy/compose.yaml, the Dockerfile and the Makefile (probe paths,
ports, commands, queue, settings names, secrets, autoscaling targets, resources, users)."""

from __future__ import annotations

import copy
import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

kv = pytest.importorskip("kubernetes_validate", reason="pip install kubernetes-validate (a dev requirement)")

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "deploy" / "k8s"
KUSTOMIZATION = K8S / "kustomization.yaml"
SECRET_TEMPLATE = K8S / "secret.example.yaml"
COMPOSE = ROOT / "deploy" / "compose.yaml"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
SCALING = ROOT / "docs" / "scaling.md"

# The oldest Kubernetes release these manifests promise to work on (autoscaling/v2, policy/v1, emptyDir.sizeLimit);
# docs/scaling.md names it too.
K8S_VERSION = "1.30"
NAMESPACE = "plant-disease"
APP_IMAGE = "plant-disease:latest"
SECRET_KEYS = {"PD_JWT_SECRET", "PD_DATABASE_URL"}
# Environment variables that are not app.config.Settings fields, and who reads them.
NON_APP_ENV = {"FORWARDED_ALLOW_IPS": "uvicorn (trusted proxy addresses; see app/__main__.py)"}


# ---------------------------------------------------------------------------------------------------------------
# helpers


def load(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def kustomization() -> dict:
    return yaml.safe_load(KUSTOMIZATION.read_text())


def manifest_files() -> list[Path]:
    "The files kustomization.yaml applies."
    return [K8S / r for r in kustomization()["resources"]]


def objects() -> list[dict]:
    return [o for f in manifest_files() for o in load(f)]


def by_kind(kind: str) -> dict[str, dict]:
    return {o["metadata"]["name"]: o for o in objects() if o["kind"] == kind}


def secret_template() -> dict:
    (s,) = load(SECRET_TEMPLATE)
    return s


def config_map() -> dict[str, str]:
    return by_kind("ConfigMap")["plant-disease-config"]["data"]


def containers(workload: dict) -> list[dict]:
    spec = workload["spec"]["template"]["spec"]
    return spec.get("initContainers", []) + spec["containers"]


def container(deployment: str) -> dict:
    (c,) = by_kind("Deployment")[deployment]["spec"]["template"]["spec"]["containers"]
    return c


def argv(c: dict) -> list[str]:
    return [str(a) for a in c.get("command", []) + c.get("args", [])]


def option(args: list[str], name: str) -> str:
    "The value of `--name value` or `--name=value`."
    for i, a in enumerate(args):
        if a == name:
            return args[i + 1]
        if a.startswith(name + "="):
            return a.split("=", 1)[1]
    raise AssertionError(f"{name} not in {args}")


def container_port(c: dict, port) -> int:
    "A probe's or Service's port (a number or a container port's name) as the container's port number."
    if isinstance(port, int):
        return port
    named = {p["name"]: p["containerPort"] for p in c.get("ports", []) if "name" in p}
    assert port in named, f"port {port!r} is not a named port of container {c['name']} ({named})"
    return named[port]


def service_for(deployment: str) -> dict:
    labels = by_kind("Deployment")[deployment]["spec"]["template"]["metadata"]["labels"]
    found = [s for s in by_kind("Service").values() if s["spec"]["selector"].items() <= labels.items()]
    assert len(found) == 1, f"{len(found)} Services select the {deployment} pods"
    return found[0]


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def as_argv(cmd) -> list[str]:
    return list(map(str, cmd)) if isinstance(cmd, list) else shlex.split(cmd)


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = re.sub(
        r"\\\n", " ", "\n".join(l for l in DOCKERFILE.read_text().splitlines() if not l.lstrip().startswith("#"))
    )
    return [(m[1].upper(), m[2].strip()) for m in re.finditer(r"^\s*([A-Za-z]+)\s+(.*)$", text, re.M)]


def quantity(v) -> float:
    "A Kubernetes CPU or memory quantity (500m, 2, 512Mi, 4Gi, 1G) as a number."
    m = re.fullmatch(r"([0-9.]+)(m|k|M|G|T|Ki|Mi|Gi|Ti)?", str(v))
    assert m, f"not a quantity: {v!r}"
    scale = {
        None: 1,
        "m": 1e-3,
        "k": 1e3,
        "M": 1e6,
        "G": 1e9,
        "T": 1e12,
        "Ki": 2**10,
        "Mi": 2**20,
        "Gi": 2**30,
        "Ti": 2**40,
    }[m[2]]
    return float(m[1]) * scale


def validate(obj: dict, version: str = K8S_VERSION) -> None:
    "Strict schema validation; a kind/apiVersion without a schema for this Kubernetes version is an error too."
    kv.validate(obj, version, strict=True)


def settings_fields() -> set[str]:
    from app.config import Settings

    assert Settings.model_config["env_prefix"] == "PD_"
    return set(Settings.model_fields)


# ---------------------------------------------------------------------------------------------------------------
# (a) schema validation, offline


def test_kustomization_lists_every_manifest():
    "kustomization.yaml applies every manifest here (and only existing ones), in the plant-disease namespace."
    k = kustomization()
    assert k["apiVersion"] == "kustomize.config.k8s.io/v1beta1" and k["kind"] == "Kustomization"
    assert k["namespace"] == NAMESPACE
    listed = k["resources"]
    assert len(listed) == len(set(listed)), f"listed twice: {listed}"
    for r in listed:
        assert (K8S / r).is_file(), f"kustomization.yaml lists {r}, which does not exist"
    here = {p.name for p in K8S.glob("*.y*ml")} - {KUSTOMIZATION.name, SECRET_TEMPLATE.name}
    assert here == set(listed), f"not listed: {sorted(here - set(listed))}; missing: {sorted(set(listed) - here)}"
    assert SECRET_TEMPLATE.is_file() and SECRET_TEMPLATE.name not in listed, (
        "the Secret template must not be applied (it would overwrite the real secret)"
    )
    assert NAMESPACE in by_kind("Namespace")
    for o in objects() + [secret_template()]:
        assert o["metadata"].get("namespace", NAMESPACE) == NAMESPACE, o["metadata"]
    kinds_names = [(o["kind"], o["metadata"]["name"]) for o in objects()]
    assert len(kinds_names) == len(set(kinds_names)), kinds_names
    # the image kustomize rewrites is the one the workloads use
    images = {c["image"] for d in by_kind("Deployment").values() for c in containers(d)}
    assert any(i["name"] == APP_IMAGE.split(":")[0] for i in k["images"]) and APP_IMAGE in images, images


@pytest.mark.parametrize("name", sorted(p.name for p in K8S.glob("*.y*ml") if p.name != KUSTOMIZATION.name))
def test_manifest_validates_strictly(name):
    "Each object validates against the Kubernetes JSON schemas bundled with kubernetes-validate, strict mode."
    docs = load(K8S / name)
    assert docs, f"{name} is empty"
    for obj in docs:
        try:
            validate(obj)
        except kv.ValidationError as e:
            pytest.fail(f"{name}: {obj['kind']}/{obj['metadata']['name']} at {'.'.join(map(str, e.path))}: {e.message}")
        except kv.SchemaNotFoundError as e:
            pytest.fail(f"{name}: {e.message}")


def test_validator_catches_errors():
    "The validation above can fail: misspelled fields, wrong types, a missing required field, a removed API."
    api = by_kind("Deployment")["api"]
    validate(api)

    typo = copy.deepcopy(api)  # `readinessprobe` for `readinessProbe`: only strict mode sees it
    c = typo["spec"]["template"]["spec"]["containers"][0]
    c["readinessprobe"] = c.pop("readinessProbe")
    with pytest.raises(kv.ValidationError, match="readinessprobe"):
        validate(typo)
    kv.validate(typo, K8S_VERSION, strict=False)  # the reason for strict=True

    def rename_port(d):
        p = d["spec"]["template"]["spec"]["containers"][0]["ports"][0]
        p["containerPorts"] = p.pop("containerPort")

    for broken in (
        rename_port,
        lambda d: d["spec"].__setitem__("replicas", "two"),
        lambda d: d["spec"]["template"]["spec"]["containers"][0]["readinessProbe"].__setitem__("periodSeconds", "10s"),
        lambda d: d["spec"]["template"]["spec"]["containers"][0].pop("name"),
        lambda d: d["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"].__setitem__(
            "pathh", "/health"
        ),
    ):
        bad = copy.deepcopy(api)
        broken(bad)
        with pytest.raises(kv.ValidationError):
            validate(bad)

    hpa = copy.deepcopy(by_kind("HorizontalPodAutoscaler")["api"])
    hpa["apiVersion"] = "autoscaling/v2beta2"  # removed in Kubernetes 1.26
    with pytest.raises(kv.SchemaNotFoundError):
        validate(hpa)


@pytest.mark.skipif(not shutil.which("kubectl"), reason="kubectl not installed: kustomize build not checked")
def test_kustomize_build_validates():
    "Where kubectl is installed, `kubectl kustomize` (offline) renders the tree and the result validates too."
    out = subprocess.run(["kubectl", "kustomize", str(K8S)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    rendered = [d for d in yaml.safe_load_all(out.stdout) if d]
    assert len(rendered) == len(objects())
    for obj in rendered:
        validate(obj)
        if obj["kind"] != "Namespace":
            assert obj["metadata"]["namespace"] == NAMESPACE, obj["metadata"]


# ---------------------------------------------------------------------------------------------------------------
# (b) consistency with the service


def test_probes_hit_real_routes():
    "The API's liveness/startup probes call /health and its readiness probe /ready, routes the app serves, on its port."
    from app.config import Settings
    from app.main import create_app

    app = create_app(Settings(require_auth=False, _env_file=None))
    paths = set(app.openapi()["paths"]) | {getattr(r, "path", None) for r in app.routes}
    c = container("api")
    probes = {k: c[k]["httpGet"] for k in ("startupProbe", "livenessProbe", "readinessProbe")}
    assert probes["livenessProbe"]["path"] == "/health" and probes["readinessProbe"]["path"] == "/ready", probes
    assert probes["startupProbe"]["path"] == "/health", probes
    port = int(option(argv(c), "--port"))
    for kind, probe in probes.items():
        assert probe["path"] in paths, f"{kind} probes {probe['path']}, which the app does not serve"
        assert container_port(c, probe["port"]) == port, (kind, probe)
    # models load before uvicorn listens: the startup probe must wait minutes, not seconds
    s = c["startupProbe"]
    assert s["periodSeconds"] * s["failureThreshold"] >= 300, s
    # the MLflow server: /health (exempt from its Host-header check), on its --port
    m = container("mlflow")
    for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert m[kind]["httpGet"]["path"] == "/health"
        assert container_port(m, m[kind]["httpGet"]["port"]) == int(option(argv(m), "--port"))
    # redis answers PING
    r = container("redis")
    assert r["livenessProbe"]["exec"]["command"] == ["redis-cli", "ping"] and "readinessProbe" in r


def test_ports_line_up():
    "Command --port = containerPort = Service targetPort, for the API and MLflow; the URLs in the ConfigMap reach them."
    dockerfile_cmd = json.loads([a for i, a in dockerfile_instructions() if i == "CMD"][-1])
    exposed = {int(p) for i, a in dockerfile_instructions() if i == "EXPOSE" for p in a.split()}
    services = compose()["services"]

    api = container("api")
    port = int(option(argv(api), "--port"))
    assert option(argv(api), "--host") == "0.0.0.0"
    assert port == int(option(dockerfile_cmd, "--port")) == int(option(as_argv(services["api"]["command"]), "--port"))
    assert port in exposed and [p["containerPort"] for p in api["ports"]] == [port]
    svc = service_for("api")
    assert [container_port(api, p["targetPort"]) for p in svc["spec"]["ports"]] == [port]
    annotations = by_kind("Deployment")["api"]["spec"]["template"]["metadata"].get("annotations", {})
    if "prometheus.io/port" in annotations:
        assert int(annotations["prometheus.io/port"]) == port

    cfg = config_map()
    for name, url_key, scheme in (("mlflow", "PD_TRACKING_URI", "http"), ("redis", "PD_REDIS_URL", "redis")):
        c, svc = container(name), service_for(name)
        (sp,) = svc["spec"]["ports"]
        (cp,) = c["ports"]
        assert container_port(c, sp["targetPort"]) == cp["containerPort"]
        url = urlsplit(cfg[url_key])
        assert (url.scheme, url.hostname, url.port) == (scheme, svc["metadata"]["name"], sp["port"]), (
            url_key,
            cfg[url_key],
        )
    mlflow = argv(container("mlflow"))
    assert int(option(mlflow, "--port")) == container("mlflow")["ports"][0]["containerPort"]
    # the API's MLflow client sends Host: mlflow:5000, which the server must allow
    assert urlsplit(cfg["PD_TRACKING_URI"]).netloc in option(mlflow, "--allowed-hosts").split(",")


def test_commands_match_compose_dockerfile_and_makefile():
    "API, worker and MLflow run what compose.yaml runs; the worker consumes the queue the API fills, as `make worker`."
    from app.config import Settings

    services = compose()["services"]
    dockerfile_cmd = json.loads([a for i, a in dockerfile_instructions() if i == "CMD"][-1])
    api = argv(container("api"))
    assert api[:3] == ["python", "-m", "app"] and api == as_argv(services["api"]["command"]) == dockerfile_cmd, api

    worker = argv(container("worker"))
    assert worker == as_argv(services["worker"]["command"]), worker
    assert worker[:4] == ["celery", "-A", "app.worker", "worker"], worker
    queue = option(worker, "-Q")
    assert queue == Settings.model_fields["queue"].default == config_map()["PD_QUEUE"]
    make = re.search(r"^worker:.*?\n\t\$\(BIN\)/(celery [^\n]*)", (ROOT / "Makefile").read_text(), re.M | re.S)
    assert make, "no celery command under the Makefile's worker target"
    assert shlex.split(make[1]) == worker, (make[1], worker)
    assert "celery_app" in (ROOT / "app" / "worker.py").read_text()
    # the worker's probe pings this pod's own node (Celery's default node name is celery@<hostname>)
    for probe in ("startupProbe", "livenessProbe"):
        cmd = container("worker")[probe]["exec"]["command"]
        assert cmd[:2] == ["sh", "-c"], cmd
        ping = shlex.split(cmd[2])
        assert (
            ping[:5] == ["celery", "-A", "app.worker", "inspect", "ping"] and option(ping, "-d") == "celery@$HOSTNAME"
        ), cmd
        assert "-n" not in worker and "--hostname" not in " ".join(worker), "a custom node name breaks the probe"

    mlflow = argv(container("mlflow"))
    composed = as_argv(services["mlflow"]["command"])
    assert mlflow[:2] == ["mlflow", "server"]
    strip = lambda a: [x for x in a if not x.startswith("--allowed-hosts")]
    assert strip(mlflow) == strip(composed), (mlflow, composed)
    assert argv(container("redis")) == as_argv(services["redis"]["command"])
    assert container("redis")["image"] == services["redis"]["image"]
    for name in ("api", "worker", "mlflow"):
        assert container(name)["image"] == services[name]["image"] == APP_IMAGE


def test_env_names_are_real_settings():
    "Every variable the manifests set or mention (comments included) is PD_ + a Settings field, or a known non-app one."
    fields = settings_fields()
    named: set[str] = set(config_map()) | set(secret_template()["stringData"])
    for d in by_kind("Deployment").values():
        for c in containers(d):
            named |= {e["name"] for e in c.get("env", [])}
    texts = "".join(p.read_text() for p in K8S.glob("*.y*ml"))
    named |= set(re.findall(r"\bPD_[A-Z0-9_]+\b", texts))
    unknown = sorted(n for n in named if not (n.startswith("PD_") and n[3:].lower() in fields) and n not in NON_APP_ENV)
    assert not unknown, f"not settings of the app (typo?): {unknown}; known: {sorted(fields)}"
    import uvicorn.config

    assert "FORWARDED_ALLOW_IPS" in Path(uvicorn.config.__file__).read_text()
    assert "FORWARDED_ALLOW_IPS" in (ROOT / "app" / "__main__.py").read_text()
    # the app containers get the ConfigMap and the Secret whole, and these exist
    for name in ("api", "worker"):
        refs = container(name)["envFrom"]
        assert {"configMapRef": {"name": "plant-disease-config"}} in refs
        assert {"secretRef": {"name": secret_template()["metadata"]["name"]}} in refs
        # the Secret comes last, so it wins over a same-named ConfigMap key
        assert "secretRef" in refs[-1]
        for e in container(name).get("env", []):
            assert e["name"] not in SECRET_KEYS, f"{name}: {e['name']} must come from the Secret"


def test_config_and_secret_make_valid_settings():
    "ConfigMap + Secret (with a real-length key) is a valid Settings, the same as compose.yaml's; the placeholder is not."
    from pydantic import ValidationError
    from sqlalchemy.engine import make_url
    from app.config import Settings

    cfg, secret = config_map(), secret_template()["stringData"]
    assert not set(cfg) & SECRET_KEYS, "secrets belong in the Secret, not the ConfigMap"
    kwargs = {k[3:].lower(): v for k, v in {**cfg, **secret}.items()}
    s = Settings(**{**kwargs, "jwt_secret": "f" * 64}, _env_file=None)
    assert s.require_auth and s.jwt_algorithm == "HS256" and s.queue == "predict"
    assert [(v.name, v.source) for v in s.variants] == [("A", "models:/plant-disease@production")]
    assert make_url(s.database_url).drivername == "mssql+pyodbc", "the image ships the SQL Server ODBC driver only"
    with pytest.raises(ValidationError, match="32 bytes"):
        Settings(**kwargs, _env_file=None)  # the template's placeholder key: the pods refuse to start
    # the same settings as deploy/compose.yaml (its SQLite log on a shared volume becomes a database server here)
    env = compose()["services"]["api"]["environment"]
    composed = {k: str(v) for k, v in env.items() if k.startswith("PD_")}
    assert set(composed) <= set(cfg) | SECRET_KEYS, sorted(set(composed) - set(cfg) - SECRET_KEYS)
    for k, v in composed.items():
        if k == "PD_VARIANTS":
            assert json.loads(cfg[k]) == json.loads(v)
        elif k not in SECRET_KEYS:
            assert cfg[k] == v, (k, cfg[k], v)


def test_secret_holds_the_jwt_key_and_database_url():
    "The Secret has exactly the JWT key and the database URL; docs/scaling.md says how to create it with kubectl."
    s = secret_template()
    assert s["kind"] == "Secret" and s["type"] == "Opaque" and set(s["stringData"]) == SECRET_KEYS
    name = s["metadata"]["name"]
    readme = SCALING.read_text()
    m = re.search(rf"kubectl (?:-n {NAMESPACE} )?create secret generic {name}\b(.*?)(?:\n\n|```)", readme, re.S)
    assert m, f"docs/scaling.md does not show `kubectl create secret generic {name}`"
    assert all(f"--from-literal={k}=" in m[1] for k in SECRET_KEYS), m[1]
    assert f"create secret generic {name}" in SECRET_TEMPLATE.read_text()


def test_hpas_target_the_api_and_workers():
    "autoscaling/v2 HPAs on CPU for the api and worker Deployments, which have CPU requests and leave replicas to them."
    deployments = by_kind("Deployment")
    hpas = by_kind("HorizontalPodAutoscaler")
    targets = set()
    for name, h in hpas.items():
        assert h["apiVersion"] == "autoscaling/v2"
        ref = h["spec"]["scaleTargetRef"]
        assert ref["apiVersion"] == "apps/v1" and ref["kind"] == "Deployment" and ref["name"] in deployments, ref
        targets.add(ref["name"])
        assert 1 <= h["spec"]["minReplicas"] <= h["spec"]["maxReplicas"]
        metrics = [m["resource"] for m in h["spec"]["metrics"] if m["type"] == "Resource"]
        assert any(m["name"] == "cpu" and m["target"]["type"] == "Utilization" for m in metrics), metrics
        d = deployments[ref["name"]]
        assert "replicas" not in d["spec"], f"{ref['name']}: spec.replicas would fight the HPA on every apply"
        assert all("cpu" in c["resources"]["requests"] for c in containers(d))
    assert targets == {"api", "worker"}, targets
    # Services and PodDisruptionBudgets select the pods they are for
    for kind in ("Service", "PodDisruptionBudget"):
        for name, o in by_kind(kind).items():
            sel = o["spec"]["selector"]
            sel = sel.get("matchLabels", sel)
            hits = [
                d
                for d, dep in deployments.items()
                if sel.items() <= dep["spec"]["template"]["metadata"]["labels"].items()
            ]
            assert hits == [name], (kind, name, hits)
    for name, d in deployments.items():
        assert d["spec"]["selector"]["matchLabels"].items() <= d["spec"]["template"]["metadata"]["labels"].items(), name


def test_resources_and_non_root():
    "Every container has CPU and memory requests and limits; every pod runs as the image's unprivileged user."
    uid = re.search(r"useradd [^\n]*--uid (\d+)[^\n]* pd\b", DOCKERFILE.read_text())
    assert uid, "no `useradd --uid N ... pd` in the Dockerfile"
    for name, d in by_kind("Deployment").items():
        pod = d["spec"]["template"]["spec"]
        sc = pod["securityContext"]
        assert sc["runAsNonRoot"] is True and sc["runAsUser"] != 0, (name, sc)
        assert pod.get("automountServiceAccountToken") is False, name
        for c in containers(d):
            r = c["resources"]
            for res in ("cpu", "memory"):
                assert res in r["requests"] and res in r["limits"], (name, c["name"], r)
                assert quantity(r["limits"][res]) >= quantity(r["requests"][res]), (name, c["name"], res)
            csc = c["securityContext"]
            assert csc["allowPrivilegeEscalation"] is False and csc["capabilities"]["drop"] == ["ALL"], (name, csc)
            if c["image"] == APP_IMAGE:
                assert sc["runAsUser"] == int(uid[1]), f"{name} runs as {sc['runAsUser']}, the image's user is {uid[1]}"


def test_writable_paths_are_volumes():
    "With a read-only root filesystem, everything the containers write (cache, spool, MLflow store, /tmp) is a volume."

    def mounted(c: dict, path: str) -> bool:
        return any(
            path == m["mountPath"] or path.startswith(m["mountPath"].rstrip("/") + "/") for m in c["volumeMounts"]
        )

    cfg = config_map()
    for name in ("api", "worker"):
        c = container(name)
        assert c["securityContext"]["readOnlyRootFilesystem"] is True
        for path in (cfg["PD_MODEL_CACHE"], cfg["PD_SPOOL_DIR"], "/tmp"):
            assert mounted(c, path), f"{name}: {path} is not on a volume"
    m = container("mlflow")
    args = argv(m)
    store = option(args, "--backend-store-uri")
    assert store.startswith("sqlite:///") and mounted(m, store[len("sqlite:///") :]), store
    assert mounted(m, option(args, "--artifacts-destination")) and mounted(m, "/tmp")
    claims = {
        v["persistentVolumeClaim"]["claimName"]
        for d in by_kind("Deployment").values()
        for v in d["spec"]["template"]["spec"].get("volumes", [])
        if "persistentVolumeClaim" in v
    }
    assert claims == set(by_kind("PersistentVolumeClaim")), claims
    assert mounted(container("redis"), "/data")  # the redis image's working directory: its append-only file


def test_docs_scaling_page():
    "docs/scaling.md's Kubernetes section says how to deploy, scale and how the manifests are validated."
    text = SCALING.read_text()
    section = text[text.index("### Kubernetes") :]
    nxt = re.search(r"^##(#)? ", section[3:], re.M)
    section = section[: nxt.start() + 3] if nxt else section
    for needed in (
        "kubectl apply -k deploy/k8s",
        "create secret generic",
        "kubectl -n plant-disease scale",
        "kubernetes-validate",
        K8S_VERSION,
        "tests/test_k8s.py",
        "get hpa",
    ):
        assert needed in section, f"docs/scaling.md's Kubernetes section does not mention {needed!r}"
