"""webhosting.pods.https_probe over a unix socket (unix_socket): a real HTTP server on a
socket in a temporary directory, the probe function the module calls, and the module run
as Ansible runs it."""

import http.server
import json
import os
import socketserver
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from ansible_collections.webhosting.pods.plugins.modules import https_probe

MODULE = Path(https_probe.__file__)
COLLECTIONS = Path(__file__).resolve().parents[4] / ".collections"


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - the name http.server calls
        body = ("%s %s" % (self.headers.get("Host"), self.path)).encode()
        self.send_response(404 if self.path == "/missing" else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args):
        pass


class _UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def get_request(self):
        request, _ = super().get_request()
        return request, ("unix", 0)


@pytest.fixture
def server(tmp_path):
    path = str(tmp_path / "8080")
    srv = _UnixServer(path, _Handler)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield path
    srv.shutdown()
    srv.server_close()


def test_probe_unix_asks_with_the_host_and_any_status_is_an_answer(server):
    status, digest = https_probe.probe_unix("shop", server, "/version", 5)
    assert status == 200 and len(digest) == 64
    status, _ = https_probe.probe_unix("shop", server, "/missing", 5)
    assert status == 404


def run_module(tmp_path, **args):
    args_file = tmp_path / "args.json"
    args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    done = subprocess.run(
        [sys.executable, str(MODULE), str(args_file)],
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(COLLECTIONS)),
        timeout=60,
        check=False,
    )
    return json.loads(done.stdout)


def test_the_module_answers_status_zero_without_a_server(tmp_path, server):
    out = run_module(tmp_path, server_name="shop", unix_socket=server)
    assert out["status"] == 200 and out["changed"] is False
    gone = run_module(tmp_path, server_name="shop", unix_socket=str(tmp_path / "none"))
    assert gone["status"] == 0 and "No such file" in gone["error"]
