"""Helpers of the client tests: the sample client as a module and a scriptable HTTP endpoint."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from devkit.paths import SAMPLE_CLIENT, load_script


def as_pcm16(audio):
    """Float samples as they arrive after a trip through a 16-bit WAV (what --format wav sends)."""
    from edgeml.audioformat import float_to_int16, int16_to_float

    return int16_to_float(float_to_int16(audio))


def without_scoring_vars() -> dict[str, str]:
    """This process's environment minus SCORING_*: a client run must not pick up a stray key."""
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("SCORING_")}


def reference_decode(model_dir, audio) -> str:
    """A CTC model's transcript of exactly these samples (processor, argmax, batch_decode)."""
    import torch
    from transformers import AutoModelForCTC, AutoProcessor

    processor = AutoProcessor.from_pretrained(model_dir)
    model = AutoModelForCTC.from_pretrained(model_dir).eval()
    inputs = processor(audio, sampling_rate=16000, return_tensors="pt")
    with torch.inference_mode():
        logits = model(inputs.input_values).logits
    return processor.batch_decode(logits.argmax(-1))[0]


def load_sample_client():
    """cloudml/sample-client.py imported as a module (its file name has a hyphen)."""
    return load_script(SAMPLE_CLIENT, "sample_client")


@dataclass
class Reply:
    status: int = 200
    body: bytes = b'{"result": "HELLO"}'
    content_type: str = "application/json"
    delay: float = 0.0


@dataclass
class Endpoint:
    """A real HTTP server on 127.0.0.1 that answers what the test scripts and records requests."""

    url: str
    replies: list[Reply]
    requests: list[dict] = field(default_factory=list)


@contextlib.contextmanager
def scripted_endpoint(*replies: Reply) -> Iterator[Endpoint]:
    """Serve the replies in order (the last one repeats); stop the server afterwards."""
    endpoint = Endpoint(url="", replies=list(replies) or [Reply()])

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's naming
            length = int(self.headers.get("Content-Length", 0))
            endpoint.requests.append(
                {"path": self.path, "headers": dict(self.headers), "body": self.rfile.read(length)}
            )
            index = min(len(endpoint.requests), len(endpoint.replies)) - 1
            reply = endpoint.replies[index]
            time.sleep(reply.delay)
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.wfile.write(reply.body)

        def log_message(self, *args):  # keep test output clean
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    endpoint.url = f"http://127.0.0.1:{server.server_address[1]}/score"
    try:
        yield endpoint
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def json_reply(status: int, payload: dict) -> Reply:
    return Reply(status=status, body=json.dumps(payload).encode())
