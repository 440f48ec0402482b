"""Check deploy/k8s/ with kubernetes-validate (strict) and by reading the manifests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"

FEEDSVC_VARIABLES = {
    "FEEDSVC_BIND", "FEEDSVC_WORKERS", "FEEDSVC_DATA", "FEEDSVC_BASE_URL",
    "FEEDSVC_CACHE_URL", "FEEDSVC_SNAPSHOT_DIR", "FEEDSVC_LOG_LEVEL", "FEEDSVC_METRICS_ALLOW",
    "FEEDSVC_ACTIVITYPUB", "FEEDSVC_ACTIVITYPUB_DELIVER", "FEEDSVC_TRUST_PROXY",
}


def manifests() -> dict[str, Any]:
    """Return the resources listed in kustomization.yaml by kind (a second of a kind, e.g.
    the fediverse's Service, by kind/name)."""
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))
    resources: dict[str, Any] = {}
    for name in kustomization["resources"]:
        for doc in yaml.safe_load_all((K8S / name).read_text(encoding="utf-8")):
            key = doc["kind"] if doc["kind"] not in resources else \
                f"{doc['kind']}/{doc['metadata']['name']}"
            resources[key] = doc
    return resources


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert sorted(kustomization["resources"]) == sorted(on_disk)
    images = {image["name"] for image in kustomization["images"]}
    assert {c["image"] for c in pod_spec()["containers"]} <= images


@pytest.mark.parametrize("version", ["1.27.0", kubernetes_validate.latest_version()])
@pytest.mark.parametrize("kind", ["Deployment", "Service", "PodDisruptionBudget", "ConfigMap",
                                  "StatefulSet", "Service/feedsvc-fediverse"])
def test_k8s_manifest_is_valid_in_strict_mode(kind: str, version: str) -> None:
    # strict rejects unknown fields; a missing schema raises SchemaNotFoundError.
    kubernetes_validate.validate(manifests()[kind], version, strict=True)


def pod_spec() -> Any:
    return manifests()["Deployment"]["spec"]["template"]["spec"]


def test_deployment_probes_resources_and_security() -> None:
    deployment = manifests()["Deployment"]
    assert deployment["spec"]["replicas"] >= 2
    (container,) = pod_spec()["containers"]
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports == {"http": 8000}
    for probe, path in (("startupProbe", "/healthz"), ("livenessProbe", "/healthz"),
                        ("readinessProbe", "/readyz")):
        assert container[probe]["httpGet"] == {"path": path, "port": "http"}, probe
    for bound in ("requests", "limits"):
        assert set(container["resources"][bound]) == {"cpu", "memory"}, bound
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] and not security["allowPrivilegeEscalation"]
    assert security["capabilities"]["drop"] == ["ALL"]
    assert pod_spec()["securityContext"]["runAsNonRoot"]
    assert pod_spec()["securityContext"]["runAsUser"] != 0
    assert pod_spec()["enableServiceLinks"] is False


def test_deployment_mounts_dataset_and_snapshot_dir() -> None:
    (container,) = pod_spec()["containers"]
    env = {item["name"]: item["value"] for item in container["env"]}
    assert set(env) <= FEEDSVC_VARIABLES and env["FEEDSVC_BIND"] == "0.0.0.0:8000"
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod_spec()["volumes"]}
    data = mounts[env["FEEDSVC_DATA"]]
    assert data["readOnly"]
    configmap = manifests()["ConfigMap"]["metadata"]["name"]
    assert volumes[data["name"]]["configMap"]["name"] == configmap
    assert "emptyDir" in volumes[mounts[env["FEEDSVC_SNAPSHOT_DIR"]]["name"]]


def test_service_and_pdb_select_the_pods() -> None:
    resources = manifests()
    pod_labels = resources["Deployment"]["spec"]["template"]["metadata"]["labels"]
    selector = resources["Deployment"]["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod_labels.items()
    service = resources["Service"]["spec"]
    assert service["selector"].items() <= pod_labels.items()
    assert {p["targetPort"] for p in service["ports"]} == {"http"}
    pdb = resources["PodDisruptionBudget"]["spec"]
    assert pdb["selector"]["matchLabels"] == selector
    assert 0 < pdb["minAvailable"] < resources["Deployment"]["spec"]["replicas"]


def configmap_layout() -> dict[str, str]:
    """Return the dataset as the pod sees it: relative path -> text."""
    data = manifests()["ConfigMap"]["data"]
    (volume,) = [v for v in pod_spec()["volumes"] if "configMap" in v]
    items = volume["configMap"]["items"]
    assert sorted(item["key"] for item in items) == sorted(data), "volume items != ConfigMap keys"
    return {item["path"]: data[item["key"]] for item in items}


def write_as_kubelet_does(layout: dict[str, str], directory: Path) -> None:
    """Lay files out like a ConfigMap volume: hidden payload dir, ..data, top-level links."""
    payload = directory / "..2024_01_01_00_00_00.000000000"
    for path, text in layout.items():
        (payload / path).parent.mkdir(parents=True, exist_ok=True)
        (payload / path).write_text(text, encoding="utf-8")
    (directory / "..data").symlink_to(payload.name)
    for top in {path.split("/")[0] for path in layout}:
        (directory / top).symlink_to(f"..data/{top}")


def test_configmap_dataset_is_valid(tmp_path: Path) -> None:
    layout = configmap_layout()
    parsed = {path: yaml.safe_load(text) for path, text in layout.items()}
    site, topics = parsed.pop("site.yaml")["site"], parsed.pop("topics.yaml")["topics"]
    slugs = {topic["slug"] for topic in topics}
    assert parsed, "the example dataset has no release"
    for path, release in parsed.items():
        assert path == f"releases/{release['id']}.yaml"
        assert release["type"] in site["types"] and set(release["topics"]) <= slugs
    # The kubelet's layout (with its hidden ..data and timestamped directories) is what
    # FEEDSVC_DATA points at in the pod, so that is what the loader must accept.
    write_as_kubelet_does(layout, tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "feedsvc", "check-data", str(tmp_path)],
        capture_output=True, text=True, timeout=60, check=False, cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"ok, {len(parsed)} releases" in result.stdout


def test_one_fediverse_owner_with_its_deliverer_beside_it_on_a_persistent_volume() -> None:
    """The web pods do not own the fediverse; one StatefulSet pod does, its state on a
    claimed volume, and its deliver container runs `feedsvc deliver` on the same state."""
    resources = manifests()
    web = {e["name"]: e["value"] for e in pod_spec()["containers"][0]["env"]}
    assert web["FEEDSVC_ACTIVITYPUB"] == "elsewhere"
    owner = resources["StatefulSet"]
    assert owner["spec"]["replicas"] == 1
    feedsvc, deliver = owner["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in feedsvc["env"]}
    deliver_env = {e["name"]: e["value"] for e in deliver["env"]}
    assert set(env) <= FEEDSVC_VARIABLES and set(deliver_env) <= FEEDSVC_VARIABLES
    assert env["FEEDSVC_ACTIVITYPUB"] == deliver_env["FEEDSVC_ACTIVITYPUB"] == "owner"
    assert env["FEEDSVC_ACTIVITYPUB_DELIVER"] == "external"
    assert deliver["command"] == ["feedsvc", "deliver"] and deliver["image"] == feedsvc["image"]
    for name in ("FEEDSVC_DATA", "FEEDSVC_SNAPSHOT_DIR", "FEEDSVC_BASE_URL"):
        assert deliver_env[name] == env[name], name
    (claim,) = owner["spec"]["volumeClaimTemplates"]
    for container in (feedsvc, deliver):
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        assert env["FEEDSVC_SNAPSHOT_DIR"].startswith(mounts[claim["metadata"]["name"]] + "/")
    service = resources["Service/feedsvc-fediverse"]["spec"]
    assert service["selector"].items() <= owner["spec"]["template"]["metadata"]["labels"].items()
    assert owner["spec"]["selector"]["matchLabels"] == service["selector"]
