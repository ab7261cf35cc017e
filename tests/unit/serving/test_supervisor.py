"""nginx's configuration derives from the same settings as gunicorn's, so they cannot disagree."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from sagemaker_byo import settings
from sagemaker_byo.serving.supervisor import GUNICORN_CONF, NGINX_TEMPLATE, render_nginx_conf


def render(tmp_path: Path, **env: str) -> str:
    return render_nginx_conf(settings.serving(env), tmp_path / "run", tmp_path / "run" / "gunicorn.sock")


def test_every_placeholder_of_the_template_is_filled(tmp_path):
    assert "{{" in NGINX_TEMPLATE.read_text()
    text = render(tmp_path)
    assert "{{" not in text and "}}" not in text


def test_defaults_give_port_8080_a_6_mb_limit_and_a_60_second_timeout(tmp_path):
    text = render(tmp_path)
    assert re.search(r"listen 8080 default_server;", text)
    assert "client_max_body_size 6m;" in text
    assert "proxy_read_timeout 60s;" in text
    assert "the body is larger than the limit of 6 MB" in text


def test_settings_from_the_environment_reach_nginx(tmp_path):
    text = render(tmp_path, SAGEMAKER_BIND_TO_PORT="9000", SAGEMAKER_MAX_PAYLOAD_IN_MB="20",
                  MODEL_SERVER_TIMEOUT="120")
    assert "listen 9000 default_server;" in text
    assert "client_max_body_size 20m;" in text
    for directive in ("client_body_timeout", "proxy_read_timeout", "proxy_send_timeout"):
        assert f"{directive} 120s;" in text
    assert "MODEL_SERVER_TIMEOUT=120 seconds" in text


def test_socket_and_runtime_folder_are_used(tmp_path):
    text = render(tmp_path)
    assert f"server unix:{tmp_path / 'run' / 'gunicorn.sock'} fail_timeout=0;" in text
    assert f"pid {tmp_path / 'run'}/nginx.pid;" in text


@pytest.mark.parametrize(("mb", "kb"), [("1", "1024"), ("6", "1024"), ("100", "1024")])
def test_body_buffer_is_at_most_1_mb(tmp_path, mb, kb):
    assert f"client_body_buffer_size {kb}k;" in render(tmp_path, SAGEMAKER_MAX_PAYLOAD_IN_MB=mb)


def test_metrics_go_to_serves_scrape_server_or_answer_404_when_turned_off(tmp_path):
    on = render(tmp_path)
    assert f"proxy_pass http://unix:{tmp_path / 'run' / 'metrics.sock'}:;" in on
    off = render(tmp_path, MODEL_SERVER_METRICS="false")
    assert "metrics.sock" not in off
    assert 'location = /metrics { return 404 "metrics are turned off (MODEL_SERVER_METRICS=false)\\n"; }' in off


def test_the_inference_id_reaches_the_app_and_the_access_line_in_the_chosen_format(tmp_path):
    text = render(tmp_path)
    assert "proxy_set_header X-Amzn-SageMaker-Inference-Id $inference_id;" in text
    assert re.search(r"log_format sagemaker '.*inference_id=\$inference_id';", text)
    as_json = render(tmp_path, SAGEMAKER_CONTAINER_LOG_FORMAT="json")
    assert re.search(r"""log_format sagemaker escape=json '\{"time":.*"inference_id":"\$inference_id".*\}';""", as_json)


def test_a_placeholder_serve_does_not_know_is_an_error(tmp_path):
    template = tmp_path / "nginx.conf"
    template.write_text("listen {{port}};\nworker_rlimit_nofile {{files}};\n")
    with pytest.raises(ValueError, match=r"placeholder serve does not fill: \{\{files\}\}"):
        render_nginx_conf(settings.serving({}), tmp_path, tmp_path / "s.sock", template=template)


def test_asynchronous_inference_limits_reach_nginx_gunicorn_and_the_app_from_one_setting_each(tmp_path):
    env = {"SAGEMAKER_MAX_PAYLOAD_IN_MB": "1024", "MODEL_SERVER_TIMEOUT": "3600"}
    text = render(tmp_path, **env)
    assert "client_max_body_size 1024m;" in text
    assert "client_body_buffer_size 1024k;" in text  # anything larger is spooled to a file by nginx
    assert f"client_body_temp_path {tmp_path / 'run'}/client_body;" in text
    for directive in ("client_body_timeout", "proxy_read_timeout", "proxy_send_timeout"):
        assert f"{directive} 3600s;" in text
    config = settings.serving(env)
    assert config.max_payload_bytes == 1024 * 1024 * 1024  # the app's own limit
    gunicorn = json.loads(subprocess.run(
        [sys.executable, str(GUNICORN_CONF)], env={**os.environ, **env}, capture_output=True, text=True,
        check=True, cwd=GUNICORN_CONF.parent).stdout)
    assert gunicorn["timeout"] == 3600 + settings.WORKER_TIMEOUT_MARGIN  # after nginx's own 504


# nginx's directives that name a file it writes (logs, pid, request and response bodies it spools).
WRITTEN_BY_NGINX = re.compile(r"^\s*(pid|error_log|access_log|\w+_temp_path)\s+(\S+?)[\s;]", re.M)


@pytest.mark.parametrize("env", [{}, {"SAGEMAKER_MULTI_MODEL": "true"}, {"MODEL_SERVER_METRICS": "false"}],
                         ids=["one-model", "multi-model", "no-metrics"])
def test_every_file_nginx_writes_is_in_the_runtime_folder_so_it_runs_as_any_user_on_a_read_only_root(
        tmp_path, env):
    text = render(tmp_path, **env)
    written = dict(WRITTEN_BY_NGINX.findall(text))
    assert {"pid", "error_log", "access_log", "client_body_temp_path", "proxy_temp_path"} <= set(written)
    elsewhere = {directive: path for directive, path in written.items()
                 if path not in {"stderr", "/dev/stdout"} and not path.startswith(f"{tmp_path / 'run'}/")}
    assert elsewhere == {}
    sockets = re.findall(r"unix:([^\s:;]+)", text)
    assert sockets and all(path.startswith(f"{tmp_path / 'run'}/") for path in sockets)


def test_serve_without_a_writable_runtime_folder_exits_2_saying_how_to_give_it_one(tmp_path):
    """As on a read-only root file system with nothing mounted on /tmp; nothing is started."""
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    env = {**os.environ, "SAGEMAKER_RUNTIME_DIR": str(not_a_folder / "run"),
           "PYTHONPATH": str(GUNICORN_CONF.parent)}
    result = subprocess.run([sys.executable, "-c", "import sys\nfrom sagemaker_byo.serving.supervisor import main\n"
                             "sys.exit(main([]))"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert "serve needs a writable folder" in result.stderr
    assert "--tmpfs /tmp" in result.stderr and "SAGEMAKER_RUNTIME_DIR" in result.stderr
    assert "Traceback" not in result.stderr and "started gunicorn" not in result.stderr
