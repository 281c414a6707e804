"""deploy/k8s: every manifest is valid against the Kubernetes API schemas (kubernetes-validate's
bundled schemas, offline, strict: unknown fields fail) and has the production shape."""

from pathlib import Path

import kubernetes_validate
import msgspec
import pytest
import yaml

from service.settings import Settings

K8S = Path(__file__).resolve().parent.parent / "deploy" / "k8s"
VERSION = kubernetes_validate.latest_version()


def documents():
    return {path.name: doc for path in sorted(K8S.glob("*.yaml")) if path.name != "kustomization.yaml"
            for doc in yaml.safe_load_all(path.read_text()) if doc}


@pytest.mark.parametrize("name", sorted(documents()))
def test_manifest_is_valid_against_the_api_schema(name):
    kubernetes_validate.validate(documents()[name], VERSION, strict=True)


def test_a_broken_manifest_is_rejected():
    """The validator is not a rubber stamp: a misspelt field and a wrong type both fail."""
    deployment = documents()["deployment.yaml"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["readinessProbe"]["httpGett"] = container["readinessProbe"].pop("httpGet")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, VERSION, strict=True)
    deployment = documents()["deployment.yaml"]
    deployment["spec"]["replicas"] = "three"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, VERSION, strict=True)


def test_deployment_shape():
    docs = documents()
    pod = docs["deployment.yaml"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["resources"]["requests"]["cpu"] and container["resources"]["limits"]["memory"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001  # the Dockerfile's `app` user
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    # Secrets come from the Secret, by keys it defines; nothing secret is written in the manifests.
    secret_keys = set(docs["secret.example.yaml"]["stringData"])
    for job in (pod, docs["migrate-job.yaml"]["spec"]["template"]["spec"]):
        for env in job["containers"][0]["env"]:
            if "valueFrom" in env:
                assert env["valueFrom"]["secretKeyRef"]["key"] in secret_keys
            assert env["name"] not in ("DATABASE_URL", "SERVICE_TOKENS") or "valueFrom" in env
    # Every variable set is a setting the service reads (a typo would be silently ignored).
    settings = {f.name.upper() for f in msgspec.structs.fields(Settings)}
    configured = {e["name"] for e in container["env"]} | set(docs["configmap.yaml"]["data"])
    assert configured <= settings, configured - settings


def test_migration_job_pdb_and_hpa_target_the_service():
    docs = documents()
    labels = docs["deployment.yaml"]["spec"]["template"]["metadata"]["labels"]
    assert docs["migrate-job.yaml"]["spec"]["template"]["spec"]["containers"][0]["command"] == [
        "python", "-m", "service", "migrate"]
    assert docs["migrate-job.yaml"]["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    selector = docs["pdb.yaml"]["spec"]["selector"]["matchLabels"]
    assert selector.items() <= labels.items()
    assert docs["pdb.yaml"]["spec"]["minAvailable"] < docs["hpa.yaml"]["spec"]["minReplicas"]
    target = docs["hpa.yaml"]["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", docs["deployment.yaml"]["metadata"]["name"])
    assert docs["hpa.yaml"]["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    assert docs["service.yaml"]["spec"]["selector"].items() <= labels.items()
    listed = set(yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"])
    assert listed == set(documents()) - {"secret.example.yaml"}
