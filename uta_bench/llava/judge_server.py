"""A minimal OpenAI-compatible chat endpoint (``POST /v1/chat/completions``) serving a local HF judge.

For offline LLaVA-Bench judging: ``python -m uta_bench.llava.judge_server --lm smollm2-135m --port 8011``
then ``uta-bench run llava-bench ... --judge-url http://127.0.0.1:8011/v1``. Requests are served one at a
time (the model is not shared across threads). Only loopback by default.
"""
from __future__ import annotations

import argparse
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer


def make_handler(judge, model_name: str):
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # quiet
            pass

        def _send(self, code: int, obj: dict):
            data = json.dumps(obj).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            if self.path.rstrip("/") in ("/v1/models", "/models"):
                return self._send(200, {"object": "list", "data": [{"id": model_name, "object": "model"}]})
            self._send(404, {"error": {"message": f"no route {self.path}"}})

        def do_POST(self):
            if self.path.rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
                return self._send(404, {"error": {"message": f"no route {self.path}"}})
            try:
                req = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                msgs = req["messages"]
                system = "\n".join(m["content"] for m in msgs if m["role"] == "system")
                user = "\n".join(m["content"] for m in msgs if m["role"] == "user")
            except (ValueError, KeyError, TypeError) as e:
                return self._send(400, {"error": {"message": f"bad chat completion request: {e}"}})
            with lock:
                text = judge.complete(user, system=system) if system else judge.complete(user)
            self._send(200, {"id": f"chatcmpl-{time.time_ns()}", "object": "chat.completion",
                             "created": int(time.time()), "model": model_name,
                             "choices": [{"index": 0, "finish_reason": "stop",
                                          "message": {"role": "assistant", "content": text}}]})

    return Handler


def serve(judge, host: str = "127.0.0.1", port: int = 0, model_name: str = "local-judge"):
    """Start the server in a daemon thread -> (server, base URL ending in /v1). ``port=0``: any free port."""
    server = HTTPServer((host, port), make_handler(judge, model_name))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://{host}:{server.server_address[1]}/v1"


def main(argv=None) -> None:
    from uta_bench.llava.judge import HFJudge

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lm", required=True, help="LM spec (smollm2-135m, gguf:FILE, HF dir or name)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8011)
    ap.add_argument("--free-form", action="store_true", help="do not constrain the score line")
    a = ap.parse_args(argv)
    judge = HFJudge(a.lm, constrain_scores=not a.free_form)
    server = HTTPServer((a.host, a.port), make_handler(judge, a.lm))
    print(f"serving {a.lm} at http://{a.host}:{server.server_address[1]}/v1", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
