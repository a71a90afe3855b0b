"""The Kubernetes manifests build, validate and keep their promises.

`kubectl kustomize` builds the base and the production overlay; every object validates
against the Kubernetes schemas (strict: no unknown fields); and the checks below hold. Each
check returns the broken promises and runs once on the built manifests and once on a broken
copy, so that none passes vacuously.
"""

from __future__ import annotations

import copy
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from shop_kernel.messaging.broker import NAMESPACE
from shop_platform.backbone import Backbone
from shop_platform.cli import API_DRAIN_S, WORKER_DRAIN_S
from shop_platform.contexts import CONTEXTS, known_settings, settings_from_env

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
KUBERNETES_VERSION = kubernetes_validate.latest_version()
SECRET = "shop-secrets"

Docs = list[dict[str, Any]]


def build(directory: Path) -> Docs:
    kubectl = shutil.which("kubectl") or str(Path(sys.executable).parent / "kubectl")
    built = subprocess.run(
        [kubectl, "kustomize", str(directory)], capture_output=True, text=True, check=True
    )
    return [doc for doc in yaml.safe_load_all(built.stdout) if doc]


@pytest.fixture(scope="module", params=["base", "overlays/production"])
def manifests(request: pytest.FixtureRequest) -> Docs:
    return build(K8S / request.param)


def one(docs: Docs, kind: str, name: str) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return doc["spec"]["template"]["spec"]["containers"]


def workloads(docs: Docs) -> Docs:
    return [d for d in docs if d["kind"] in {"Deployment", "Job"}]


# ------------------------------------------------------------------ the checks


def probes_and_shutdown(docs: Docs) -> list[str]:
    broken = []
    api = one(docs, "Deployment", "shop-api")
    (container,) = containers(api)
    if container.get("readinessProbe", {}).get("httpGet", {}).get("path") != "/health/ready":
        broken.append("the API's readiness probe is not /health/ready")
    if container.get("livenessProbe", {}).get("httpGet", {}).get("path") != "/health/live":
        broken.append("the API's liveness probe is not /health/live")
    pre_stop = container.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
    if pre_stop <= 0:
        broken.append("the API has no preStop pause while its endpoints go")
    if api["spec"]["template"]["spec"].get("terminationGracePeriodSeconds", 30) <= (
        pre_stop + API_DRAIN_S
    ):
        broken.append("the API's grace period does not cover preStop and the request drain")
    for worker in workers(docs):
        name = worker["metadata"]["name"]
        if worker["spec"]["template"]["spec"].get("terminationGracePeriodSeconds", 30) <= (
            WORKER_DRAIN_S
        ):
            broken.append(f"{name}'s grace period does not cover Dramatiq's shutdown")
        if not containers(worker)[0].get("livenessProbe"):
            broken.append(f"{name} has no liveness probe")
    return broken


def workers(docs: Docs) -> Docs:
    return [
        d for d in docs if d["kind"] == "Deployment" and containers(d)[0]["args"][0] == "worker"
    ]


def served(worker: dict[str, Any]) -> set[str]:
    """The queues a worker deployment's program listens to (`shop worker --serve`)."""
    args = containers(worker)[0]["args"]
    kind = args[args.index("--serve") + 1] if "--serve" in args else "all"
    return set(Backbone.of(CONTEXTS).queues_serving(kind))


def every_queue_served(docs: Docs) -> list[str]:
    """Between them, the worker deployments serve every queue (each subscriber runs)."""
    queues = set(Backbone.of(CONTEXTS).queues)
    serving = set[str]().union(*(served(worker) for worker in workers(docs)))
    return [f"no worker serves the queue {queue}" for queue in sorted(queues - serving)]


def hardened(docs: Docs) -> list[str]:
    broken = []
    for doc in workloads(docs):
        pod = doc["spec"]["template"]["spec"]
        name = doc["metadata"]["name"]
        if not pod.get("securityContext", {}).get("runAsNonRoot"):
            broken.append(f"{name} may run as root")
        if pod.get("serviceAccountName") != "shop":
            broken.append(f"{name} does not use the token-less service account")
        for container in pod["containers"]:
            resources = container.get("resources", {})
            if not resources.get("requests", {}).get("cpu") or not resources.get("limits", {}).get(
                "memory"
            ):
                broken.append(f"{name}/{container['name']} lacks a CPU request or memory limit")
            context = container.get("securityContext", {})
            if context.get("allowPrivilegeEscalation") is not False or not context.get(
                "readOnlyRootFilesystem"
            ):
                broken.append(f"{name}/{container['name']} is not locked down")
    return broken


def settings_referenced(docs: Docs) -> list[str]:
    """Every SHOP_* setting is given to the API by the ConfigMap or by a Secret key."""
    config = one(docs, "ConfigMap", "shop-config")["data"]
    (api,) = containers(one(docs, "Deployment", "shop-api"))
    from_secret = {
        item["name"]
        for item in api.get("env", [])
        if item.get("valueFrom", {}).get("secretKeyRef", {}).get("name") == SECRET
    }
    given = set(config) | from_secret
    known = known_settings()
    broken = [f"{name} is neither in shop-config nor in {SECRET}" for name in known - given]
    broken += [f"{name} is not a setting" for name in given - known]
    both = set(config) & from_secret
    broken += [f"{name} is both in shop-config and in {SECRET}" for name in both]
    for name in sorted(known):
        if name in config:
            try:
                settings_from_env({name: config[name]})
            except Exception as exc:  # noqa: BLE001 - any refusal is the finding
                broken.append(f"{name}={config[name]!r} is refused: {exc}")
    return broken


def scaling(docs: Docs) -> list[str]:
    broken = []
    hpa = one(docs, "HorizontalPodAutoscaler", "shop-api")
    if hpa["spec"]["scaleTargetRef"] != {"apiVersion": "apps/v1", "kind": "Deployment",
                                         "name": "shop-api"}:  # fmt: skip
        broken.append("the HPA does not scale the API")
    api_labels = one(docs, "Deployment", "shop-api")["spec"]["template"]["metadata"]["labels"]
    for pdb in (d for d in docs if d["kind"] == "PodDisruptionBudget"):
        wanted = pdb["spec"]["selector"]["matchLabels"]
        if not any(
            wanted.items() <= d["spec"]["template"]["metadata"]["labels"].items()
            for d in docs
            if d["kind"] == "Deployment"
        ):
            broken.append(f"PodDisruptionBudget {pdb['metadata']['name']} selects no pods")
    if not any(
        d["kind"] == "PodDisruptionBudget"
        and d["spec"]["selector"]["matchLabels"].items() <= api_labels.items()
        for d in docs
    ):
        broken.append("no PodDisruptionBudget covers the API")
    for scaled in (d for d in docs if d["kind"] == "ScaledObject"):
        lists = {t["metadata"]["listName"] for t in scaled["spec"]["triggers"]}
        target = one(docs, "Deployment", scaled["spec"]["scaleTargetRef"]["name"])
        queues = {f"{NAMESPACE}:{queue}" for queue in served(target)}
        if lists != queues:
            broken.append(
                f"the ScaledObject of {target['metadata']['name']} watches {sorted(lists)},"
                f" not the queues it serves ({sorted(queues)})"
            )
    return broken


def migrations_and_network(docs: Docs) -> list[str]:
    broken = []
    job = one(docs, "Job", "shop-migrate")
    if containers(job)[0].get("args") != ["db", "upgrade"]:
        broken.append("the migration Job does not run `shop db upgrade`")
    deny = [
        d
        for d in docs
        if d["kind"] == "NetworkPolicy"
        and d["spec"]["policyTypes"] == ["Ingress", "Egress"]
        and "ingress" not in d["spec"]
        and "egress" not in d["spec"]
    ]
    if not deny:
        broken.append("no default-deny NetworkPolicy")
    for policy in deny:
        selector = policy["spec"]["podSelector"]["matchLabels"]
        for doc in workloads(docs):
            labels = doc["spec"]["template"]["metadata"].get("labels", {})
            if not selector.items() <= labels.items():
                broken.append(f"{doc['metadata']['name']}'s pods escape the default deny")
    return broken


CHECKS: list[Callable[[Docs], list[str]]] = [
    probes_and_shutdown,
    hardened,
    settings_referenced,
    scaling,
    migrations_and_network,
    every_queue_served,
]


# ------------------------------------------------------------------ the tests


def test_every_object_validates_against_the_kubernetes_schemas(manifests: Docs) -> None:
    checked = 0
    for doc in manifests:
        if doc["apiVersion"].startswith("keda.sh/"):
            continue  # a CRD's kind: its own test below
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        checked += 1
    assert checked >= 10


def test_an_invalid_object_is_refused_by_the_validation(manifests: Docs) -> None:
    broken = copy.deepcopy(one(manifests, "Deployment", "shop-api"))
    broken["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("check", CHECKS, ids=lambda check: check.__name__)
def test_the_manifests_keep_their_promises(
    manifests: Docs, check: Callable[[Docs], list[str]]
) -> None:
    assert check(manifests) == []


def _without_readiness(docs: Docs) -> None:
    del containers(one(docs, "Deployment", "shop-api"))[0]["readinessProbe"]


def _short_grace(docs: Docs) -> None:
    one(docs, "Deployment", "shop-worker")["spec"]["template"]["spec"][
        "terminationGracePeriodSeconds"
    ] = WORKER_DRAIN_S


def _as_root(docs: Docs) -> None:
    one(docs, "Job", "shop-migrate")["spec"]["template"]["spec"]["securityContext"] = {}


def _forgotten_setting(docs: Docs) -> None:
    del one(docs, "ConfigMap", "shop-config")["data"]["SHOP_RELAY_BATCH_SIZE"]


def _bad_setting(docs: Docs) -> None:
    one(docs, "ConfigMap", "shop-config")["data"]["SHOP_LOG_LEVEL"] = "LOUD"


def _unlabelled_pods(docs: Docs) -> None:
    labels = one(docs, "Deployment", "shop-worker")["spec"]["template"]["metadata"]["labels"]
    del labels["app.kubernetes.io/part-of"]


def _no_projections_worker(docs: Docs) -> None:
    docs.remove(one(docs, "Deployment", "shop-worker-projections"))


def _hpa_elsewhere(docs: Docs) -> None:
    one(docs, "HorizontalPodAutoscaler", "shop-api")["spec"]["scaleTargetRef"]["name"] = "x"


@pytest.mark.parametrize(
    ("breakage", "check", "finding"),
    [
        (_without_readiness, probes_and_shutdown, "readiness probe is not /health/ready"),
        (_short_grace, probes_and_shutdown, "shop-worker's grace period does not cover"),
        (_as_root, hardened, "shop-migrate may run as root"),
        (_forgotten_setting, settings_referenced, "SHOP_RELAY_BATCH_SIZE is neither"),
        (_bad_setting, settings_referenced, "SHOP_LOG_LEVEL='LOUD' is refused"),
        (_unlabelled_pods, migrations_and_network, "shop-worker's pods escape"),
        (_hpa_elsewhere, scaling, "the HPA does not scale the API"),
        (_no_projections_worker, every_queue_served, "no worker serves the queue orders-proj"),
    ],
    ids=lambda value: getattr(value, "__name__", None) or str(value)[:20],
)
def test_each_check_catches_a_broken_promise(
    manifests: Docs,
    breakage: Callable[[Docs], None],
    check: Callable[[Docs], list[str]],
    finding: str,
) -> None:
    docs = copy.deepcopy(manifests)
    breakage(docs)
    assert any(finding in broken for broken in check(docs)), check(docs)


def test_production_scales_each_worker_on_the_queues_it_serves_with_keda() -> None:
    docs = build(K8S / "overlays/production")
    for name in ("shop-worker", "shop-worker-projections"):
        scaled = one(docs, "ScaledObject", name)
        assert scaled["spec"]["scaleTargetRef"]["name"] == name
    handlers = one(docs, "Deployment", "shop-worker")
    projections = one(docs, "Deployment", "shop-worker-projections")
    assert served(handlers) == set(Backbone.of(CONTEXTS).queues_serving("handlers"))
    assert served(projections) == set(Backbone.of(CONTEXTS).queues_serving("projections"))
    auth = one(docs, "TriggerAuthentication", "shop-redis")
    assert auth["spec"]["secretTargetRef"][0]["name"] == SECRET
    assert scaling(docs) == []
    assert {d["metadata"].get("namespace") for d in docs} == {"shop"}
