"""moto's S3 server as its own process, with one protocol fix: moto 5.2.5 names the root element
of its CompleteMultipartUpload response `CompleteMultipartUploadResponse` where S3 (and the AWS
SDK pyarrow uses) expect `CompleteMultipartUploadResult` (getmoto/moto#10055, fixed upstream by
#10056 after this release), so every pyarrow upload retried for ~75 s and failed.
Usage: python tests/moto_s3_server.py HOST PORT"""

from __future__ import annotations

import sys

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from moto.server import MotoRequestHandler
from werkzeug.serving import run_simple

WRONG, RIGHT = b"CompleteMultipartUploadResponse", b"CompleteMultipartUploadResult"


def fixed(app):
    """WSGI middleware: rename the root element of CompleteMultipartUpload responses."""

    def wsgi(environ, start_response):
        if environ["REQUEST_METHOD"] != "POST" or "uploadId" not in environ.get("QUERY_STRING", ""):
            return app(environ, start_response)  # everything but CompleteMultipartUpload as moto has it
        captured = {}

        def capture(status, headers, exc_info=None):
            captured.update(status=status, headers=headers, exc_info=exc_info)

        body = b"".join(app(environ, capture))
        if WRONG in body[:300]:
            body = body.replace(WRONG, RIGHT)
        headers = [
            (k, str(len(body)) if k.lower() == "content-length" else v) for k, v in captured["headers"]
        ]
        start_response(captured["status"], headers, captured["exc_info"])
        return [body]

    return wsgi


def main(host: str, port: int) -> None:
    import os

    os.environ.setdefault("MOTO_PORT", str(port))
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(host, port, fixed(app), threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
