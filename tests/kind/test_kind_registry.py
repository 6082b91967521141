"""Images and the chart reach the kind cluster as they reach a real one (issue 16 item 1): `make kind-up`
pushes the project images under content tags to the registry beside the nodes and the chart as an OCI
artifact; a node's containerd pulls an image from there, and `helm install oci://… --version` installs
the release whose pods name the registry's images with imagePullPolicy IfNotPresent.
"""

from __future__ import annotations

import json
import subprocess
import urllib.request

import pytest
import yaml

from support import chart, wait_for

pytestmark = pytest.mark.kind

HELM = chart.REPO / ".tools" / "bin" / "helm"
MANIFEST_TYPES = "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json"


def manifest_digest(registry: str, ref: str) -> str:
    """The digest the registry serves for ``ref`` (registry/name:tag)."""
    name, tag = ref.removeprefix(f"{registry}/").rsplit(":", 1)
    request = urllib.request.Request(f"http://{registry}/v2/{name}/manifests/{tag}", method="HEAD",
                                     headers={"Accept": MANIFEST_TYPES})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return answer.headers["Docker-Content-Digest"]


def content_key(image: str) -> str:
    label = '{{index .Config.Labels "io.posts-pipeline.content-key"}}'
    return subprocess.run(["docker", "image", "inspect", "-f", label, image], capture_output=True, text=True,
                          check=True).stdout.strip()


def crictl(node: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", "exec", node, "crictl", *args], capture_output=True, text=True, check=check)


def test_the_images_in_the_registry_carry_the_content_tags_of_the_local_images(pushed, project_version):
    assert set(pushed["images"]) >= {"posts-pipeline", "posts-pipeline-operator"}, pushed
    for name, ref in pushed["images"].items():
        assert ref.startswith(f"{pushed['registry']}/{name}:"), ref
        tag = ref.rsplit(":", 1)[1]
        assert tag == f"{project_version}-{content_key(f'{name}:{project_version}')}", ref
        assert manifest_digest(pushed["registry"], ref).startswith("sha256:")


def test_a_node_pulls_the_project_image_from_the_registry(kubectl, namespace, pushed):
    """On the control-plane node (no project pods run there), with the image removed from its containerd first,
    a pod of the pushed image: the kubelet pulls it, and the node's image is the registry's by digest."""
    ref = pushed["images"]["posts-pipeline"]
    node = next(n["metadata"]["name"] for n in kubectl.json("get", "nodes")["items"]
                if "node-role.kubernetes.io/control-plane" in n["metadata"]["labels"])
    crictl(node, "rmi", ref, check=False)
    assert crictl(node, "inspecti", ref, check=False).returncode != 0, f"{ref} is still on {node}"
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "pull"},
           "spec": {"nodeName": node, "restartPolicy": "Never", "terminationGracePeriodSeconds": 1,
                    "tolerations": [{"operator": "Exists"}],
                    "containers": [{"name": "main", "image": ref, "imagePullPolicy": "IfNotPresent",
                                    "command": ["python", "-c", "import pipeline; print('ok')"]}]}}
    kubectl.apply(json.dumps(pod), namespace)

    def ended() -> str | None:
        phase = kubectl.json("-n", namespace, "get", "pod", "pull")["status"].get("phase")
        return phase if phase in ("Succeeded", "Failed") else None

    phase = wait_for(ended, 600, "the pod to pull its image and run", interval=2)
    assert phase == "Succeeded", kubectl("-n", namespace, "describe", "pod", "pull")

    status = kubectl.json("-n", namespace, "get", "pod", "pull")["status"]["containerStatuses"][0]
    digest = manifest_digest(pushed["registry"], ref)
    assert status["image"] == ref, status
    assert status["imageID"] == f"{ref.rsplit(':', 1)[0]}@{digest}", status
    events = kubectl.json("-n", namespace, "get", "events", "--field-selector", "involvedObject.name=pull")["items"]
    pulled = [e["message"] for e in events if e["reason"] == "Pulled"]
    assert any(m.startswith(f'Successfully pulled image "{ref}"') for m in pulled), pulled
    print(f"{node}: {pulled[0]}")  # the pull time and size, as the kubelet measured them
    images = json.loads(crictl(node, "images", "-o", "json").stdout)["images"]
    assert any(ref in i["repoTags"] and f"{ref.rsplit(':', 1)[0]}@{digest}" in i["repoDigests"] for i in images)


def test_the_release_is_installed_from_the_oci_chart_at_its_version(kubeconfig, kubectl, namespace, pushed):
    ref = pushed["images"]["posts-pipeline"]
    version = yaml.safe_load((chart.CHART / "Chart.yaml").read_text())["version"]
    assert pushed["chart"] == f"oci://{pushed['registry']}/charts/posts-pipeline"
    assert pushed["chart_version"] == version

    def helm(*args: str) -> str:
        return subprocess.run([str(HELM), "--kubeconfig", kubeconfig, "-n", namespace, *args], capture_output=True,
                              text=True, check=True, timeout=300).stdout

    helm("install", "oci", *chart.install_source(), "--set", "run.input=s3://posts/Posts.xml",
         "--set", "run.outputPrefix=s3://posts/runs", "--set", "tests.enabled=false", "--wait", "--timeout", "2m")
    metadata = json.loads(helm("get", "metadata", "oci", "-o", "json"))
    assert (metadata["chart"], metadata["version"]) == ("posts-pipeline", version), metadata
    (revision,) = json.loads(helm("history", "oci", "-o", "json"))
    assert revision["chart"] == f"posts-pipeline-{version}" and revision["status"] == "deployed", revision

    cronjob = kubectl.json("-n", namespace, "get", "cronjob", "oci-posts-pipeline")
    (container,) = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    assert (container["image"], container["imagePullPolicy"]) == (ref, "IfNotPresent"), container
    # The driver's Dask pods get the same image and policy through the release's pipeline config.
    config = yaml.safe_load(kubectl.json("-n", namespace, "get", "configmap", "oci-posts-pipeline")["data"]
                            ["pipeline.yaml"])["posts-pipeline"]["cluster"]["kubernetes"]
    assert (config["image"], config["image-pull-policy"]) == (ref, "IfNotPresent"), config
    helm("uninstall", "oci", "--wait")
