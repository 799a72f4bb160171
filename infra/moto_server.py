"""Runs moto server on loopback for the local stack and the tests.

Usage: python infra/moto_server.py [PORT]   (0 or nothing: any free port)

Prints `ready <port>` once it accepts connections, then serves until its parent process
exits (checked twice a second), so a test run that dies never leaves an emulator behind.
SIGTERM/SIGINT stop it too.

DynamoDB requests are handled one at a time. DynamoDB applies each conditional write and
each transaction atomically; moto does not lock its tables between request threads, so two
concurrent transactions could both pass the same condition. Serializing DynamoDB requests
restores the isolation DynamoDB guarantees, so the race tests exercise our conditions
rather than the emulator's own races. Other services (SQS long polls above all) are not
serialized. Connections stay keep-alive (the server is threaded).
"""

import os
import signal
import sys
import threading
import time

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import make_server


def serialized(app):
    lock = threading.Lock()

    def handle(environ, start_response):
        if not environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB_"):
            return app(environ, start_response)
        with lock:
            # Consume the body inside the lock: the work happens while iterating.
            return list(app(environ, start_response))

    return handle


def main() -> None:
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    parent = os.getppid()
    app = DomainDispatcherApplication(create_backend_app)
    server = make_server("127.0.0.1", port, serialized(app), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    print(f"ready {server.server_port}", flush=True)

    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    while not stop and os.getppid() == parent:
        time.sleep(0.5)
    server.shutdown()


if __name__ == "__main__":
    main()
