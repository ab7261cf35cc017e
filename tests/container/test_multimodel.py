"""The built image as a multi-model endpoint: the capability label, and `serve` with
SAGEMAKER_MULTI_MODEL=true, no /opt/ml/model, models mounted under /opt/ml/models as SageMaker
lays them out (one folder per model, the model.tar.gz unpacked into it), loaded, listed, invoked
and unloaded through nginx, as root in the container (nginx's workers run as another user).
"""

from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor

import joblib
import numpy as np
import requests
from test_image import Container, container_trained_dir, containers, docker, image, wait_ready  # noqa: F401

from support import PAYLOAD, copy_test_dir, free_port

LABEL = "com.amazonaws.sagemaker.capabilities.multi-models"


def test_image_declares_the_multi_model_capability(image):  # noqa: F811 - the fixture
    labels = docker("inspect", "--format", "{{json .Config.Labels}}", image).stdout
    assert f'"{LABEL}":"true"' in labels


def test_a_multi_model_endpoint_loads_invokes_and_unloads_models_from_opt_ml_models(
        image, containers, container_trained_dir, tmp_path):  # noqa: F811 - the fixtures
    base = copy_test_dir(tmp_path / "ml")
    shutil.rmtree(base / "model")  # absent in MME mode
    names = [f"customer-{i}" for i in range(6)]
    for name in names:
        shutil.copytree(container_trained_dir / "model", base / "models" / name / "model")
    port = free_port()
    container = containers(image, "serve", base, env={"SAGEMAKER_BIND_TO_PORT": port, "SAGEMAKER_MULTI_MODEL": "true",
                                                      "MODEL_SERVER_WORKERS": "2"})
    url = f"http://127.0.0.1:{port}"
    wait_ready(url, container)
    assert requests.get(f"{url}/models", timeout=5).json() == {"models": []}

    def load(name: str) -> requests.Response:
        return requests.post(f"{url}/models", json={"model_name": name, "url": f"/opt/ml/models/{name}/model"},
                             timeout=60)

    with ThreadPoolExecutor(4) as pool:
        assert [a.status_code for a in pool.map(load, names)] == [200] * len(names)
    assert load(names[0]).status_code == 409
    listed = requests.get(f"{url}/models", params={"limit": 4}, timeout=5).json()
    assert len(listed["models"]) == 4 and "nextPageToken" in listed
    assert requests.get(f"{url}/models/{names[0]}", timeout=5).json() == {
        "modelName": names[0], "modelUrl": f"/opt/ml/models/{names[0]}/model"}

    model = joblib.load(container_trained_dir / "model" / "model.joblib")
    expected = list(model.predict(np.loadtxt(PAYLOAD, delimiter=",", ndmin=2)))
    headers = {"Content-Type": "text/csv", "X-Amzn-SageMaker-Target-Model": "customer-0.tar.gz"}
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda n: requests.post(f"{url}/models/{n}/invoke", data=PAYLOAD.read_bytes(),
                                                        headers=headers, timeout=30), names * 3))
    assert all(a.status_code == 200 and a.text.splitlines() == expected for a in answers)

    assert requests.delete(f"{url}/models/{names[0]}", timeout=60).status_code == 200
    for _ in range(4):
        assert requests.post(f"{url}/models/{names[0]}/invoke", data=PAYLOAD.read_bytes(), headers=headers,
                             timeout=30).status_code == 404
    assert requests.delete(f"{url}/models/{names[0]}", timeout=60).status_code == 404
    assert load("../../etc").status_code == 400
    assert requests.post(f"{url}/models", json={"model_name": "x", "url": "/opt/ml/models/none"},
                         timeout=30).status_code == 404
    assert requests.get(f"{url}/ping", timeout=2).status_code == 200
    assert "Traceback" not in container.logs()
