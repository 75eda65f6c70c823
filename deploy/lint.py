#!/usr/bin/env python3
"""Static checks of deploy/, run by `scripts/test lint` (no container engine or cluster needed).

Needs the packages of deploy/lint-requirements.txt (scripts/test installs them into a virtualenv) and the Debian
packages docker-compose and systemd:

- compose: `docker-compose config` resolves the file (with and without the observability profile); the resolved
  model must have the contracted topology, variables and health checks, and Prometheus, HAProxy and Grafana must
  name exactly the services it defines. With the Raft override (docker-compose.raft.yml) it must resolve too, to
  three metadata replicas with the same --peers list, each advertising its own entry, every client given the whole
  list, and Prometheus (prometheus.raft.yml) scraping every service.
- grafana: the dashboard JSON parses, is laid out sanely, and every metric it queries is recorded somewhere in
  the Rust sources (so a renamed metric breaks the lint, not the dashboard).
- helm: Helm's own engine (helm-python-sdk: Helm v4's Go SDK) lints the chart and renders it for several sets
  of values; every manifest is validated against the Kubernetes OpenAPI schemas (kubernetes-validate, offline,
  strict) of the oldest supported and the newest Kubernetes, and the chart's contract is checked on the result
  (StatefulSets with claims, probes, advertised names, Services that select pods, Secrets that exist, one metadata
  pod or a Raft group whose --peers and --advertise agree, every client given every metadata URL, ...).
  Values that cannot work must fail to render.
- systemd: `systemd-analyze verify` and an offline `systemd-analyze security` exposure threshold on every unit,
  `systemd-sysusers --dry-run` on the user.
- everywhere: every `--flag` given to coffer (compose commands, chart args) and every COFFER_* variable (compose,
  chart, example env files) must be one the binary declares (clap attributes in the Rust sources).

Prints one line per check group and every problem found; exits 1 if there was any.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

DEPLOY = Path(__file__).resolve().parent
REPO = DEPLOY.parent
COMPOSE_FILE = DEPLOY / "compose" / "docker-compose.yml"
# Opt-in override: the metadata service as a Raft group of three replicas.
COMPOSE_RAFT_FILE = DEPLOY / "compose" / "docker-compose.raft.yml"
CHART = DEPLOY / "helm" / "coffer"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "coffer.json"

METRICS_PORT = 9101
OTLP_ENDPOINT = "http://jaeger:4317"
OTEL_NAMES = {"metadata": "coffer-metadata", "blobnode": "coffer-blobnode", "repair": "coffer-repair",
              "gateway": "coffer-gateway"}
# The metrics the dashboard must show (issue 8's list); each must also exist in the sources.
DASHBOARD_METRICS = {
    "coffer_s3_requests_total", "coffer_s3_request_duration_seconds", "coffer_s3_bytes_in_total",
    "coffer_s3_bytes_out_total", "coffer_s3_requests_in_flight",
    "coffer_grpc_client_duration_seconds", "coffer_grpc_server_duration_seconds",
    "coffer_blobnode_disk_capacity_bytes", "coffer_blobnode_disk_used_bytes", "coffer_blobnode_disk_healthy",
    "coffer_blobnode_fsyncs_total", "coffer_blobnode_shard_puts_total", "coffer_blobnode_batch_records",
    "coffer_repair_degraded_columns", "coffer_repair_degraded_stripes", "coffer_repair_blocked_columns",
    "coffer_repair_lost_disks", "coffer_repair_columns_total", "coffer_repair_bytes_total",
    "coffer_metadata_rocksdb_write_stall_micros_total", "coffer_metadata_rocksdb_compaction_pending_bytes",
    "coffer_metadata_block_cache_hit_ratio",
}
# Kubernetes versions whose schemas the rendered chart must pass: the chart's kubeVersion floor and the newest.
KUBE_VERSIONS = ["1.27.0", None]  # None: the newest kubernetes-validate knows
SECURITY_THRESHOLD = 25  # `systemd-analyze security` exposure x10; the units score 16 today
UNITS = {"coffer-metadata.service": "metadata", "coffer-blobnode.service": "blobnode",
         "coffer-gateway.service": "gateway", "coffer-repair.service": "repair",
         "coffer-server.service": "server"}

problems: list[str] = []


def problem(where: str, what: str) -> None:
    problems.append(f"{where}: {what}")


def check(cond: bool, where: str, what: str) -> bool:
    if not cond:
        problem(where, what)
    return cond


def rel(path: Path) -> str:
    return str(path.relative_to(REPO))


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


# --- sources of truth in the Rust code --------------------------------------------------------------------------
def rust_sources(*skip: str) -> str:
    chunks = []
    for path in REPO.rglob("*.rs"):
        parts = path.relative_to(REPO).parts
        if "target" in parts or parts[0] in skip:
            continue
        chunks.append(path.read_text(errors="replace"))
    return "\n".join(chunks)


def clap_flags(source: str) -> set[str]:
    """Long flags of the clap #[arg(long ...)] fields: `long = "name"`, else the field name with dashes."""
    flags = set()
    for m in re.finditer(r"#\[arg\(((?:[^()]|\([^()]*\))*)\)\]\s*(?:pub\s+)?(\w+)\s*:", source):
        attr, field = m.groups()
        named = re.search(r'\blong\s*=\s*"([^"]+)"', attr)
        if named:
            flags.add(named.group(1))
        elif re.search(r"\blong\b", attr):
            flags.add(field.replace("_", "-"))
    return flags


RUST = rust_sources()
RUST_METRICS = set(re.findall(r'"(coffer_[a-z0-9_]+)"', RUST))
RUST_ENV_VARS = set(re.findall(r'env\s*=\s*"(COFFER_[A-Z0-9_]+)"', RUST))
# The coffer binary's flags (the load generator's are not the binary's).
RUST_FLAGS = clap_flags(rust_sources("loadtest"))


def check_flags(args: list[str], where: str) -> None:
    for arg in args:
        if arg.startswith("--"):
            flag = arg[2:].split("=", 1)[0]
            check(flag in RUST_FLAGS, where, f"coffer has no flag --{flag}")


def check_env_names(names, where: str) -> None:
    for name in names:
        check(not name.startswith("COFFER_") or name in RUST_ENV_VARS, where, f"coffer reads no {name}")


# --- plain files ------------------------------------------------------------------------------------------------
def check_yaml_files() -> None:
    templates = CHART / "templates"
    count = 0
    for path in sorted(DEPLOY.rglob("*")):
        if path.suffix not in (".yml", ".yaml") or templates in path.parents:
            continue
        try:
            list(yaml.safe_load_all(path.read_text()))
            count += 1
        except yaml.YAMLError as e:
            problem(rel(path), f"not valid YAML: {e}")
    print(f"yaml: {count} files parse")


def check_dockerfile() -> None:
    path = DEPLOY / "Dockerfile"
    text = path.read_text()
    stages = re.findall(r"^FROM\s+(\S+)", text, re.M)
    check(len(stages) >= 2, rel(path), "must be multi-stage (a build stage and a small runtime stage)")
    runtime = text[text.rfind("\nFROM "):]
    check(re.search(r"^USER\s+10001(:10001)?\s*$", runtime, re.M) is not None, rel(path),
          "the runtime stage must run as the numeric user 10001")
    check("HEALTHCHECK" in runtime, rel(path), "no HEALTHCHECK in the runtime stage")
    check(re.search(r"apt-get install[^\n]*\bcurl\b", runtime) is not None, rel(path),
          "curl (used by the health checks) is not installed in the runtime stage")
    check(re.search(r'^VOLUME\s+\["/data"\]', runtime, re.M) is not None, rel(path), "no VOLUME /data")
    check(re.search(r'^ENTRYPOINT\s+\["coffer"\]', runtime, re.M) is not None, rel(path), "ENTRYPOINT is not coffer")
    check("COPY --from=builder /usr/local/bin/coffer" in runtime, rel(path),
          "the runtime stage does not copy the coffer binary")
    check((DEPLOY / "Dockerfile.dockerignore").is_file(), "deploy", "Dockerfile.dockerignore is missing")
    print(f"dockerfile: {len(stages)} stages, user 10001, healthcheck")


# --- compose ----------------------------------------------------------------------------------------------------
def compose_config(*extra: str) -> dict | None:
    cmd = ["docker-compose", "-f", str(COMPOSE_FILE), *extra, "config"]
    result = run(cmd, cwd=REPO)
    if result.returncode != 0:
        problem(rel(COMPOSE_FILE), f"`{' '.join(cmd[0:1] + list(extra))} config` failed: {result.stderr.strip()}")
        return None
    return yaml.safe_load(result.stdout)


def role_of(service: str) -> str | None:
    for role in OTEL_NAMES:
        if re.fullmatch(rf"{role}\d*", service):
            return role
    return None


def check_compose() -> dict[str, str]:
    """Returns {service: role} of the Coffer services."""
    plain = compose_config()
    model = compose_config("--profile", "observability")
    if plain is None or model is None:
        return {}
    where = rel(COMPOSE_FILE)
    services = model.get("services", {})
    coffer = {name: role_of(name) for name, s in services.items() if "coffer" in str(s.get("image", ""))}
    check(all(coffer.values()), where, f"Coffer services with no known role: {[n for n, r in coffer.items() if not r]}")
    roles = sorted(coffer.values(), key=str)
    for role, want in (("metadata", 1), ("blobnode", 6), ("repair", 1), ("gateway", 2)):
        check(roles.count(role) == want, where, f"{roles.count(role)} {role} services, the topology has {want}")
    profiled = {n for n, s in services.items() if s.get("profiles")}
    check(profiled == {"jaeger", "prometheus", "grafana"}, where,
          f"services in profiles: {sorted(profiled)}; want jaeger, prometheus, grafana (observability)")
    for name in profiled:
        check(services[name]["profiles"] == ["observability"], where, f"{name}: profile is not `observability`")
    for name, role in coffer.items():
        s = services[name]
        env = s.get("environment") or {}
        check(env.get("OTEL_SERVICE_NAME") == OTEL_NAMES.get(role), where,
              f"{name}: OTEL_SERVICE_NAME is {env.get('OTEL_SERVICE_NAME')!r}, want {OTEL_NAMES.get(role)!r}")
        check(env.get("OTEL_EXPORTER_OTLP_ENDPOINT") == OTLP_ENDPOINT, where,
              f"{name}: OTEL_EXPORTER_OTLP_ENDPOINT is not {OTLP_ENDPOINT}")
        check(env.get("COFFER_METRICS_ADDRESS") == f"0.0.0.0:{METRICS_PORT}", where,
              f"{name}: COFFER_METRICS_ADDRESS is not 0.0.0.0:{METRICS_PORT}")
        check(bool(s.get("healthcheck", {}).get("test")), where, f"{name}: no healthcheck")
        command = s.get("command") or []
        check(command[:1] == [role], where, f"{name}: command does not start with the role {role!r}: {command}")
        check_flags(command, f"{where} {name}")
        check_env_names(env, f"{where} {name}")
        if role == "blobnode":
            check(f"http://{name}:9200" in command, where, f"{name}: does not advertise http://{name}:9200")
        if role == "repair":
            check(command == ["repair", "--metadata", "http://metadata:9100", "--repair-grace", "15m"], where,
                  f"{name}: command is {command}")
        if role == "gateway":
            check(not s.get("ports"), where, f"{name}: gateways are reached through the load balancer only")
    blob_volumes = [v.get("source") if isinstance(v, dict) else str(v).split(":")[0]
                    for n, r in coffer.items() if r == "blobnode" for v in services[n].get("volumes", [])]
    check(len(blob_volumes) == len(set(blob_volumes)) == 6, where, f"blobnodes must have a volume each: {blob_volumes}")
    lb = services.get("lb", {})
    published = {(str(p.get("published")), str(p.get("target"))) if isinstance(p, dict)
                 else tuple(str(p).split(":")[-2:]) for p in lb.get("ports", [])}
    check(("9000", "9000") in published, where, f"lb does not publish S3 on host port 9000: {published}")
    print(f"compose: config ok (plain and --profile observability); {len(coffer)} Coffer services, "
          f"{len(services)} in all")
    check_prometheus(coffer)
    check_haproxy([n for n, r in coffer.items() if r == "gateway"])
    check_grafana_provisioning(services.get("grafana", {}))
    return coffer


def check_compose_raft() -> None:
    """docker-compose.raft.yml over docker-compose.yml: a Raft group of metadata, metadata2 and metadata3."""
    where = rel(COMPOSE_RAFT_FILE)
    plain = compose_config("-f", str(COMPOSE_RAFT_FILE))
    model = compose_config("-f", str(COMPOSE_RAFT_FILE), "--profile", "observability")
    if plain is None or model is None:
        return
    services = model.get("services", {})
    coffer = {name: role_of(name) for name, s in services.items() if "coffer" in str(s.get("image", ""))}
    replicas = sorted(n for n, r in coffer.items() if r == "metadata")
    check(replicas == ["metadata", "metadata2", "metadata3"], where, f"metadata replicas {replicas}")
    urls = ",".join(f"http://{name}:9100" for name in replicas)

    def flag(command: list, name: str) -> list:
        return [command[i + 1] for i, a in enumerate(command[:-1]) if a == name]

    volumes = []
    for name in replicas:
        s = services[name]
        command = s.get("command") or []
        check_flags(command, f"{where} {name}")
        check(command[:1] == ["metadata"], where, f"{name}: command {command}")
        check(flag(command, "--peers") == [urls], where, f"{name}: --peers {flag(command, '--peers')}, want {urls}")
        check(flag(command, "--advertise") == [f"http://{name}:9100"], where,
              f"{name}: does not advertise http://{name}:9100 (its own --peers entry)")
        check(bool(s.get("healthcheck", {}).get("test")), where, f"{name}: no healthcheck")
        check((s.get("environment") or {}).get("OTEL_SERVICE_NAME") == OTEL_NAMES["metadata"], where,
              f"{name}: OTEL_SERVICE_NAME is not {OTEL_NAMES['metadata']}")
        volumes += [v.get("source") if isinstance(v, dict) else str(v).split(":")[0] for v in s.get("volumes", [])]
    check(len(volumes) == len(set(volumes)) == len(replicas), where, f"replicas must have a volume each: {volumes}")
    for name, role in coffer.items():
        if role != "metadata":
            given = flag(services[name].get("command") or [], "--metadata")
            check(given == [urls], where, f"{name}: --metadata {given}; every client must be given {urls}")
    print(f"compose raft override: config ok (plain and --profile observability); {len(replicas)} metadata "
          f"replicas, {len(coffer) - len(replicas)} clients given every replica")
    mounts = [f"{v.get('source')}:{v.get('target')}" if isinstance(v, dict) else str(v)
              for v in services.get("prometheus", {}).get("volumes", [])]
    check(any("prometheus.raft.yml" in m and "/etc/prometheus/prometheus.yml" in m for m in mounts), where,
          f"prometheus does not load prometheus.raft.yml: {mounts}")
    check_prometheus(coffer, DEPLOY / "compose" / "prometheus.raft.yml")


def check_prometheus(coffer: dict[str, str], path: Path = DEPLOY / "compose" / "prometheus.yml") -> None:
    config = yaml.safe_load(path.read_text())
    targets = set()
    for job in config.get("scrape_configs", []):
        if not job.get("job_name", "").startswith("coffer-"):
            continue
        check(job.get("metrics_path", "/metrics") == "/metrics", rel(path), f"{job['job_name']}: not /metrics")
        for sc in job.get("static_configs", []):
            targets.update(sc.get("targets", []))
            check("role" in sc.get("labels", {}), rel(path), f"{job['job_name']}: no `role` label")
    want = {f"{name}:{METRICS_PORT}" for name in coffer}
    check(targets == want, rel(path),
          f"scrape targets differ from the compose services: missing {sorted(want - targets)}, "
          f"unknown {sorted(targets - want)}")
    print(f"prometheus: {len(targets)} Coffer targets in {path.name}, one per Coffer service")


def check_haproxy(gateways: list[str]) -> None:
    path = DEPLOY / "compose" / "haproxy.cfg"
    text = path.read_text()
    # One backend per gateway port (S3, console, Swift), each listing every compose gateway on that port.
    servers: dict[str, set[str]] = {}
    for name, address in re.findall(r"^\s*server\s+(\S+)\s+(\S+)", text, re.M):
        host, _, port = address.partition(":")
        check(host == name, rel(path), f"server {name} points at {address}")
        servers.setdefault(port, set()).add(name)
    want = {port: set(gateways) for port in ("9000", "9001", "8080")}
    check(servers == want, rel(path), f"backend servers {servers} differ from the compose gateways {want}")
    for port in ("9000", "9001", "8080"):
        check(re.search(rf"^\s*bind\s+:{port}\b", text, re.M) is not None, rel(path), f"does not bind :{port}")
    check(re.search(r"^\s*option\s+http-buffer-request", text, re.M) is None, rel(path),
          "buffers request bodies; large uploads must stream")
    check(re.search(r"http-check\s+send\s+meth\s+GET\s+uri\s+/health/ready", text) is not None, rel(path),
          "does not check the gateways' /health/ready")
    print(f"haproxy: {len(gateways)} gateways on S3, console and Swift ports, streaming, health-checked")


def check_grafana_provisioning(grafana: dict) -> None:
    mounts = {}
    for v in grafana.get("volumes", []):
        if isinstance(v, dict):
            mounts[v.get("target")] = v.get("source")
        else:
            parts = str(v).split(":")
            mounts[parts[1]] = parts[0]
    provider_file = DEPLOY / "grafana" / "provisioning" / "dashboards" / "coffer.yaml"
    providers = yaml.safe_load(provider_file.read_text()).get("providers", [])
    paths = [p.get("options", {}).get("path") for p in providers]
    check(len(paths) == 1 and paths[0] in mounts, rel(provider_file),
          f"provider path {paths} is not a directory compose mounts into grafana ({sorted(mounts)})")
    if paths and paths[0] in mounts:
        check(Path(mounts[paths[0]]).resolve() == DASHBOARD.parent, rel(provider_file),
              f"{paths[0]} is mounted from {mounts[paths[0]]}, not {rel(DASHBOARD.parent)}")
    check("/etc/grafana/provisioning" in mounts, rel(COMPOSE_FILE), "grafana/provisioning is not mounted")
    datasources = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "datasources" / "datasources.yaml")
                                 .read_text()).get("datasources", [])
    check(any(d.get("type") == "prometheus" and d.get("url") == "http://prometheus:9090" for d in datasources),
          "grafana/provisioning/datasources", "no Prometheus data source at http://prometheus:9090")
    print("grafana: provisioning mounts and data sources consistent")


# --- dashboard --------------------------------------------------------------------------------------------------
def check_dashboard() -> None:
    where = rel(DASHBOARD)
    try:
        board = json.loads(DASHBOARD.read_text())
    except json.JSONDecodeError as e:
        problem(where, f"not valid JSON: {e}")
        return
    check(bool(board.get("uid")) and bool(board.get("title")), where, "no uid or title")
    variables = {v.get("name"): v for v in board.get("templating", {}).get("list", [])}
    check(variables.get("datasource", {}).get("type") == "datasource", where, "no `datasource` variable")
    panels = board.get("panels", [])
    ids = [p.get("id") for p in panels]
    check(len(ids) == len(set(ids)) and None not in ids, where, "panel ids missing or not unique")
    used: set[str] = set()
    queries = 0
    for p in panels:
        title = p.get("title", "?")
        pos = p.get("gridPos", {})
        check(all(k in pos for k in "hwxy") and pos.get("x", 0) + pos.get("w", 0) <= 24, where,
              f"panel {title!r}: bad gridPos {pos}")
        if p.get("type") == "row":
            continue
        check(p.get("datasource", {}).get("uid") == "${datasource}", where,
              f"panel {title!r}: data source is not ${{datasource}}")
        targets = p.get("targets", [])
        check(bool(targets), where, f"panel {title!r}: no queries")
        for t in targets:
            expr = t.get("expr", "")
            queries += 1
            check(bool(expr.strip()), where, f"panel {title!r}: empty query")
            check(expr.count("(") == expr.count(")"), where, f"panel {title!r}: unbalanced parentheses: {expr}")
            for name in re.findall(r"\bcoffer_[a-z0-9_]+", expr):
                base = re.sub(r"_(bucket|sum|count)$", "", name)
                metric = name if name in RUST_METRICS else base
                used.add(metric)
                check(metric in RUST_METRICS, where,
                      f"panel {title!r}: {name} is not recorded anywhere in the Rust sources")
    missing = DASHBOARD_METRICS - used
    check(not missing, where, f"metrics the dashboard must show but does not: {sorted(missing)}")
    print(f"dashboard: {len(panels)} panels, {queries} queries, {len(used)} metrics, all recorded in the sources")


# --- helm -------------------------------------------------------------------------------------------------------
HELM_SCENARIOS: dict[str, dict] = {
    "defaults": {},
    "everything-on": {
        "ec": "6+3",
        "writeQuorum": 8,
        "domains": ["s3.example.com"],
        "imagePullSecrets": [{"name": "registry"}],
        "image": {"repository": "registry.example.com/coffer", "tag": "1.2.3"},
        "rootCredentials": {"existingSecret": "coffer-root", "userKey": "user", "passwordKey": "password"},
        "metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}}},
        "tracing": {"otlpEndpoint": "http://otel-collector.observability:4317"},
        "serviceAccount": {"create": False, "name": "coffer"},
        "metadata": {"storage": {"storageClass": "fast-ssd"}, "extraArgs": ["--intent-ttl=48h"],
                     "extraEnv": [{"name": "COFFER_GC_INTERVAL", "value": "10s"}]},
        "blobnode": {"replicas": 10, "disksPerNode": 3, "antiAffinity": "hard",
                     "storage": {"storageClass": "local-nvme", "size": "2Ti"},
                     "tolerations": [{"key": "storage", "operator": "Exists", "effect": "NoSchedule"}],
                     "nodeSelector": {"node-role/storage": "true"}},
        "gateway": {"autoscaling": {"enabled": False}, "replicas": 3,
                    "service": {"type": "LoadBalancer", "annotations": {"example.com/lb": "external"}}},
        "repair": {"replicas": 2, "grace": "30m"},
    },
    "password-set": {"rootCredentials": {"password": "a-long-password-from-the-operator"},
                     "fullnameOverride": "coffer-with-a-rather-long-release-name-for-testing-limits"},
    "metadata-raft": {"metadata": {"replicas": 3}},
}
# The namespace every value set is rendered into (the stable DNS names of the pods contain it).
HELM_NAMESPACE = "storage"
# Values that cannot work: rendering must fail, with a message containing the text given (values.schema.json
# catches malformed values, the templates' own checks what depends on several values).
HELM_REFUSED: dict[str, tuple[dict, str]] = {
    "fewer disks than k+m": ({"blobnode": {"replicas": 4}}, "needs at least 6 blobnode disks"),
    "write quorum of k": ({"writeQuorum": 4}, "writeQuorum must be between 5 and 6"),
    "malformed ec": ({"ec": "4-2"}, "at '/ec'"),
    "unknown anti-affinity": ({"blobnode": {"antiAffinity": "sometimes"}}, "at '/blobnode/antiAffinity'"),
    "misspelt key": ({"blobnodes": {"replicas": 9}}, "additional properties 'blobnodes'"),
    "even metadata replicas": ({"metadata": {"replicas": 2}}, "metadata.replicas must be odd"),
}


def deep_merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def check_helm() -> None:
    import helm_python as helm
    import kubernetes_validate

    where = rel(CHART)
    report = helm.lint(str(CHART), None, strict=True)
    for m in report.get("messages", []):
        # 1 = info (e.g. "icon is recommended"); warnings and errors fail.
        check(m.get("severity", 3) < 2, where, f"helm lint: {m.get('path')}: {m.get('error')}")
    for e in report.get("errors", []):
        problem(where, f"helm lint: {e}")
    versions = [v or kubernetes_validate.latest_version() for v in KUBE_VERSIONS]
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    documents = 0
    with helm.Chart.load(str(CHART)) as chart:
        for scenario, values in HELM_SCENARIOS.items():
            label = f"{where} [{scenario}]"
            try:
                rendered = chart.render(values, name="coffer", namespace=HELM_NAMESPACE, is_install=True)
            except helm.HelmError as e:
                problem(label, f"render failed: {e}")
                continue
            objects = []
            for template, text in sorted(rendered.items()):
                if template.endswith("NOTES.txt"):
                    check("http://" in text, label, "NOTES.txt rendered without the endpoint")
                    continue
                try:
                    docs = [d for d in yaml.safe_load_all(text) if d]
                except yaml.YAMLError as e:
                    problem(label, f"{template} renders invalid YAML: {e}")
                    continue
                for doc in docs:
                    objects.append(doc)
                    documents += 1
                    validate_object(doc, versions, f"{label} {template}", kubernetes_validate)
            check_chart_contract(objects, deep_merge(defaults, values), label)
        for case, (values, message) in HELM_REFUSED.items():
            try:
                chart.render(values, name="coffer", namespace=HELM_NAMESPACE, is_install=True)
                problem(where, f"rendered although the values cannot work ({case}): {values}")
            except helm.HelmError as e:
                check(message in str(e), where, f"{case}: failed, but not with {message!r}: {e}")
    print(f"helm: lint ok; {len(HELM_SCENARIOS)} value sets rendered, {documents} manifests valid for Kubernetes "
          f"{', '.join(versions)}; {len(HELM_REFUSED)} impossible value sets refused")


def validate_object(doc: dict, versions: list[str], where: str, kv) -> None:
    name = f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
    if doc.get("apiVersion") == "monitoring.coreos.com/v1":
        # A CRD: not in Kubernetes' schemas. The fields the Prometheus operator needs:
        spec = doc.get("spec", {})
        check(doc.get("kind") == "ServiceMonitor" and bool(spec.get("selector", {}).get("matchLabels"))
              and all(e.get("port") for e in spec.get("endpoints", [])) and bool(spec.get("endpoints")),
              where, f"{name}: incomplete ServiceMonitor")
        return
    for version in versions:
        try:
            kv.validate(doc, version, strict=True)
        except (kv.ValidationError, kv.SchemaNotFoundError, kv.InvalidSchemaError) as e:
            problem(where, f"{name} is not valid for Kubernetes {version}: {str(e).splitlines()[0]}")


def pod_containers(obj: dict) -> list[dict]:
    return obj.get("spec", {}).get("template", {}).get("spec", {}).get("containers", [])


def env_of(container: dict) -> dict:
    return {e["name"]: e for e in container.get("env", [])}


def check_chart_contract(objects: list[dict], values: dict, where: str) -> None:
    by_kind: dict[str, dict[str, dict]] = {}
    for o in objects:
        name = o["metadata"]["name"]
        by_kind.setdefault(o["kind"], {})[name] = o
        # StatefulSet pods carry a controller-revision-hash label "<name>-<10 characters>" (63 at most).
        limit = 52 if o["kind"] == "StatefulSet" else 63
        check(len(name) <= limit and re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name) is not None, where,
              f"{o['kind']} name {name!r} is not a DNS label of at most {limit} characters")
    workloads = {**by_kind.get("StatefulSet", {}), **by_kind.get("Deployment", {})}
    services = by_kind.get("Service", {})

    def component(obj: dict) -> str:
        return obj["metadata"]["labels"].get("app.kubernetes.io/component", "")

    roles = {component(w): w for w in workloads.values()}
    if not check(set(roles) == {"metadata", "blobnode", "gateway", "repair"}, where,
                 f"workloads for {sorted(roles)}; want metadata, blobnode, gateway, repair"):
        return
    for role, kind in (("metadata", "StatefulSet"), ("blobnode", "StatefulSet"), ("gateway", "Deployment"),
                       ("repair", "Deployment")):
        check(roles[role]["kind"] == kind, where, f"{role} is a {roles[role]['kind']}, want a {kind}")

    for role, w in roles.items():
        pod = w["spec"]["template"]["spec"]
        check(pod.get("securityContext", {}).get("runAsUser") == 10001
              and pod.get("securityContext", {}).get("runAsNonRoot") is True, where,
              f"{role}: pods must run as the non-root user 10001")
        (c,) = pod["containers"]
        env = env_of(c)
        check_flags(c["args"], f"{where} {role}")
        check_env_names(env, f"{where} {role}")
        check(env.get("OTEL_SERVICE_NAME", {}).get("value") == OTEL_NAMES[role], where,
              f"{role}: OTEL_SERVICE_NAME is not {OTEL_NAMES[role]}")
        check(env.get("COFFER_METRICS_ADDRESS", {}).get("value") == f"0.0.0.0:{values['metrics']['port']}", where,
              f"{role}: no metrics listener on the metrics port")
        check(c["args"][0] == role, where, f"{role}: args do not start with the role: {c['args']}")
        check(c["image"].startswith(values["image"]["repository"] + ":"), where, f"{role}: image {c['image']}")
        ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
        if role in ("metadata", "blobnode"):
            port = {"metadata": 9100, "blobnode": 9200}[role]
            check(ports.get("grpc") == port, where, f"{role}: no grpc port {port}")
            for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
                check(c.get(probe, {}).get("tcpSocket", {}).get("port") == "grpc", where,
                      f"{role}: {probe} is not a tcpSocket probe of the grpc port")
            claims = w["spec"].get("volumeClaimTemplates", [])
            check(bool(claims), where, f"{role}: no volumeClaimTemplates")
            headless = services.get(w["spec"].get("serviceName"), {})
            check(headless.get("spec", {}).get("clusterIP") == "None", where,
                  f"{role}: serviceName {w['spec'].get('serviceName')!r} is not a headless Service of the chart")
        if role == "metadata":
            check_metadata_group(w, c, services, values, where)
        if role != "metadata":
            urls = metadata_urls(roles["metadata"], values)
            given = [a for a in c["args"] if a.startswith("--metadata=")]
            check(given == [f"--metadata={','.join(urls)}"], where,
                  f"{role}: {given}; every client must be given {urls}")
        if role == "blobnode":
            svc = w["spec"]["serviceName"]
            advertise = [a for a in c["args"] if a.startswith("--advertise=")]
            check(len(advertise) == 1 and advertise[0].startswith(f"--advertise=http://$(POD_NAME).{svc}.")
                  and advertise[0].endswith(":9200"), where, f"blobnode: advertise {advertise}")
            check(env.get("POD_NAME", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
                  == "metadata.name", where, "blobnode: POD_NAME does not come from metadata.name")
            disks = [a for a in c["args"] if a.startswith("--disk=")]
            claims = w["spec"]["volumeClaimTemplates"]
            mounts = {m["name"]: m["mountPath"] for m in c.get("volumeMounts", [])}
            check(len(disks) == len(claims) == values["blobnode"]["disksPerNode"], where,
                  f"blobnode: {len(disks)} --disk flags and {len(claims)} claims for "
                  f"disksPerNode={values['blobnode']['disksPerNode']}")
            for claim in claims:
                check(f"--disk={mounts.get(claim['metadata']['name'])}" in disks, where,
                      f"blobnode: claim {claim['metadata']['name']} is not mounted as a --disk")
            check(w["spec"]["replicas"] == values["blobnode"]["replicas"], where, "blobnode: replicas")
        if role == "gateway":
            check(ports.get("s3") == 9000, where, "gateway: no s3 port 9000")
            for probe, path in (("livenessProbe", "/health/live"), ("readinessProbe", "/health/ready")):
                get = c.get(probe, {}).get("httpGet", {})
                check(get.get("path") == path and get.get("port") == "s3", where,
                      f"gateway: {probe} is not GET {path} on the s3 port")
            ec = [a for a in c["args"] if a.startswith("--ec=")]
            check(ec == [f"--ec={values['ec']}"], where, f"gateway: {ec} for ec={values['ec']}")
            for var in ("COFFER_ROOT_USER", "COFFER_ROOT_PASSWORD"):
                ref = env.get(var, {}).get("valueFrom", {}).get("secretKeyRef", {})
                secret = values["rootCredentials"]["existingSecret"]
                if secret:
                    check(ref.get("name") == secret, where, f"gateway: {var} does not come from {secret}")
                else:
                    data = by_kind.get("Secret", {}).get(ref.get("name"), {}).get("data", {})
                    check(ref.get("key") in data, where, f"gateway: {var} refers to a missing secret or key {ref}")
            hpas = [h for h in by_kind.get("HorizontalPodAutoscaler", {}).values()
                    if h["spec"]["scaleTargetRef"]["name"] == w["metadata"]["name"]]
            if values["gateway"]["autoscaling"]["enabled"]:
                check(len(hpas) == 1, where, "gateway: no HorizontalPodAutoscaler")
                check("replicas" not in w["spec"], where, "gateway: replicas set although the HPA owns them")
            else:
                check(not hpas and w["spec"].get("replicas") == values["gateway"]["replicas"], where,
                      "gateway: replicas with autoscaling off")
        if role == "repair":
            check(f"--repair-grace={values['repair']['grace']}" in c["args"], where, "repair: no --repair-grace")
            check("tcpSocket" in c.get("livenessProbe", {}), where, "repair: no tcpSocket liveness probe")
    creds = values["rootCredentials"]
    secrets = by_kind.get("Secret", {})
    check(bool(secrets) != bool(creds["existingSecret"]), where,
          "the chart must create the root Secret exactly when no existingSecret is given")
    for secret in secrets.values():
        data = {k: base64.b64decode(v).decode() for k, v in secret.get("data", {}).items()}
        check(data.get(creds["userKey"]) == creds["user"], where, "root Secret: wrong user")
        password = data.get(creds["passwordKey"], "")
        check(password == creds["password"] if creds["password"] else len(password) >= 32, where,
              "root Secret: the password is neither the one given nor a generated one")

    # Every Service selects pods of the chart, through ports those pods have.
    for name, svc in services.items():
        selector = svc["spec"].get("selector", {})
        matched = [w for w in workloads.values()
                   if selector and selector.items() <= w["spec"]["template"]["metadata"]["labels"].items()]
        if not check(bool(matched), where, f"Service {name} selects no pods of the chart"):
            continue
        named = {p["name"] for w in matched for c in pod_containers(w) for p in c.get("ports", [])}
        for port in svc["spec"]["ports"]:
            target = port.get("targetPort")
            check(not isinstance(target, str) or target in named, where,
                  f"Service {name}: targetPort {target!r} is no container port of the pods it selects")
        if component(svc) == "gateway" and svc["spec"].get("clusterIP") != "None":
            check(all(p["name"] != "metrics" for p in svc["spec"]["ports"]), where,
                  f"Service {name}: the S3 Service must not expose the metrics port")
    # The ServiceMonitor reaches the metrics port of every role.
    for name, sm in by_kind.get("ServiceMonitor", {}).items():
        selector = sm["spec"]["selector"]["matchLabels"]
        scraped = {component(s) for s in services.values()
                   if selector.items() <= s["metadata"]["labels"].items()
                   and any(p["name"] == "metrics" for p in s["spec"]["ports"])}
        check(scraped == set(OTEL_NAMES), where, f"ServiceMonitor {name} scrapes {sorted(scraped)}, not every role")
    check(bool(by_kind.get("ServiceMonitor")) == values["metrics"]["serviceMonitor"]["enabled"], where,
          "a ServiceMonitor must exist exactly when metrics.serviceMonitor.enabled")
    pdbs = by_kind.get("PodDisruptionBudget", {})
    raft = values["metadata"]["replicas"] > 1
    check(len(pdbs) == 2 + raft, where, "want a PodDisruptionBudget for blobnodes, one for gateways"
          + (" and one for the metadata replicas" if raft else ""))
    if raft:
        selecting = [p for p in pdbs.values() if p["spec"]["selector"]["matchLabels"].items()
                     <= roles["metadata"]["spec"]["template"]["metadata"]["labels"].items()]
        check(len(selecting) == 1 and selecting[0]["spec"].get("maxUnavailable") == 1, where,
              "metadata: no PodDisruptionBudget with maxUnavailable 1 for its replicas")


def metadata_urls(statefulset: dict, values: dict) -> list[str]:
    """The metadata URLs every client must be given: the headless Service alone for one replica, every replica's
    stable name through it for a Raft group."""
    svc = statefulset["spec"]["serviceName"]
    replicas = values["metadata"]["replicas"]
    if replicas == 1:
        return [f"http://{svc}.{HELM_NAMESPACE}.svc:9100"]
    name = statefulset["metadata"]["name"]
    return [f"http://{name}-{i}.{svc}.{HELM_NAMESPACE}.svc:9100" for i in range(replicas)]


def check_metadata_group(w: dict, c: dict, services: dict, values: dict, where: str) -> None:
    """One metadata pod without Raft, or a Raft group: every pod lists all of them as --peers and advertises its own
    entry of that list (after the kubelet expands $(POD_NAME)), and they start together."""
    replicas = values["metadata"]["replicas"]
    check(w["spec"]["replicas"] == replicas, where, f"metadata: {w['spec']['replicas']} replicas, want {replicas}")
    raft_args = [a for a in c["args"] if a.split("=", 1)[0] in ("--peers", "--advertise", "--join")]
    pod = w["spec"]["template"]["spec"]
    if replicas == 1:
        check(not raft_args, where, f"metadata: a single replica runs without Raft, but has {raft_args}")
        check("podManagementPolicy" not in w["spec"], where, "metadata: podManagementPolicy with one replica")
        return
    check(replicas % 2 == 1, where, f"metadata: an even number of replicas ({replicas}) rendered")
    urls = metadata_urls(w, values)
    check(f"--peers={','.join(urls)}" in raft_args, where, f"metadata: {raft_args}; want --peers={urls}")
    advertise = [a.split("=", 1)[1] for a in raft_args if a.startswith("--advertise=")]
    if check(len(advertise) == 1, where, f"metadata: advertise {advertise}"):
        pods = [f"{w['metadata']['name']}-{i}" for i in range(replicas)]
        check([advertise[0].replace("$(POD_NAME)", pod) for pod in pods] == urls, where,
              f"metadata: --advertise={advertise[0]} does not give each pod its own --peers entry {urls}")
    check(env_of(c).get("POD_NAME", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
          == "metadata.name", where, "metadata: POD_NAME does not come from metadata.name")
    check(w["spec"].get("podManagementPolicy") == "Parallel", where,
          "metadata: the initial replicas must start together (podManagementPolicy: Parallel)")
    headless = services.get(w["spec"]["serviceName"], {})
    check(headless.get("spec", {}).get("publishNotReadyAddresses") is True, where,
          "metadata: replicas must resolve each other before they are ready (publishNotReadyAddresses)")
    if not values["metadata"]["affinity"]:
        terms = pod.get("affinity", {}).get("podAntiAffinity", {}).get(
            "preferredDuringSchedulingIgnoredDuringExecution", [])
        check(any(t["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
                  and t["podAffinityTerm"]["labelSelector"]["matchLabels"].items()
                  <= w["spec"]["template"]["metadata"]["labels"].items() for t in terms), where,
              "metadata: replicas do not prefer distinct nodes")


# --- systemd ----------------------------------------------------------------------------------------------------
def check_systemd() -> None:
    unit_dir = DEPLOY / "systemd"
    found = {p.name for p in unit_dir.glob("*.service")}
    check(found == set(UNITS), rel(unit_dir), f"units {sorted(found)}; want {sorted(UNITS)}")
    for unit, role in UNITS.items():
        path = unit_dir / unit
        if not path.is_file():
            continue
        text = path.read_text()
        for line in ("User=coffer", f"EnvironmentFile=/etc/coffer/{role}.env",
                     f"ExecStart=/usr/local/bin/coffer {role}", "Restart=on-failure", "NoNewPrivileges=yes",
                     "ProtectSystem=strict"):
            check(re.search(rf"^{re.escape(line)}$", text, re.M) is not None, rel(path), f"no `{line}`")
        check(re.search(r"^LimitNOFILE=\d+$", text, re.M) is not None, rel(path), "no LimitNOFILE")
        check_env_file(unit_dir / "env" / f"{role}.env")

    if not shutil.which("systemd-analyze"):
        problem(rel(unit_dir), "systemd-analyze not found (apt package systemd)")
        return
    with tempfile.TemporaryDirectory() as tmp:
        # `verify` insists that ExecStart's binary exists: point the copies at a stand-in.
        stub = Path(tmp) / "bin" / "coffer"
        stub.parent.mkdir()
        stub.write_text("#!/bin/sh\n")
        stub.chmod(0o755)
        copies = []
        for unit in sorted(found):
            copy = Path(tmp) / unit
            copy.write_text((unit_dir / unit).read_text().replace("/usr/local/bin/coffer", str(stub)))
            copies.append(str(copy))
        result = run(["systemd-analyze", "verify", "--man=no", *copies])
        # Unknown or misspelled settings are only warnings (exit 0): any output counts as a failure.
        output = (result.stdout + result.stderr).replace(tmp + "/", "")
        check(result.returncode == 0 and not output.strip(), rel(unit_dir),
              f"systemd-analyze verify: {output.strip() or 'exit ' + str(result.returncode)}")
        for copy in copies:
            result = run(["systemd-analyze", "security", "--offline=yes", "--no-pager",
                          f"--threshold={SECURITY_THRESHOLD}", copy])
            last = (result.stdout.strip().splitlines() or ["?"])[-1]
            check(result.returncode == 0, rel(unit_dir), f"systemd-analyze security: {last}")
        sysusers = unit_dir / "coffer.sysusers"
        if shutil.which("systemd-sysusers"):
            (Path(tmp) / "root" / "etc").mkdir(parents=True)
            result = run(["systemd-sysusers", "--dry-run", f"--root={tmp}/root", str(sysusers)])
            check(result.returncode == 0 and "UID 10001" in result.stdout + result.stderr, rel(sysusers),
                  f"systemd-sysusers --dry-run: {(result.stdout + result.stderr).strip()}")
    print(f"systemd: {len(found)} units verify, exposure under {SECURITY_THRESHOLD / 10}; env files use known "
          f"variables")


def check_env_file(path: Path) -> None:
    if not check(path.is_file(), rel(path.parent), f"no example env file {path.name}"):
        return
    for n, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        # A commented-out example (#COFFER_X=...) must still name a variable coffer reads.
        example = re.fullmatch(r"#\s*(COFFER_[A-Z0-9_]+)=.*", line)
        if example:
            check_env_names([example.group(1)], f"{rel(path)} line {n}")
        if not line or line.startswith("#"):
            continue
        m = re.fullmatch(r"([A-Z_][A-Z0-9_]*)=(.*)", line)
        if not check(m is not None, rel(path), f"line {n} is not VAR=value: {line}"):
            continue
        var = m.group(1)
        check_env_names([var], f"{rel(path)} line {n}")
        check(var.startswith("COFFER_") or var == "RUST_LOG" or var.startswith("OTEL_"), rel(path),
              f"line {n}: unexpected {var}")


def main() -> int:
    os.chdir(REPO)
    check_yaml_files()
    check_dockerfile()
    check_compose()
    check_compose_raft()
    check_dashboard()
    check_helm()
    check_systemd()
    if problems:
        print(f"\ndeploy lint: {len(problems)} problem(s):", file=sys.stderr)
        for p in problems:
            print(f"  {p}", file=sys.stderr)
        return 1
    print("deploy lint: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
