"""Runs moto server on loopback for the local stack and the tests.

Usage: python infra/moto_server.py [PORT]   (0 or nothing: any free port)

Prints `ready <port>` once it accepts connections, then serves until its parent process
exits (checked twice a second), so a test run that dies never leaves an emulator behind.
SIGTERM/SIGINT stop it too.
"""

import os
import signal
import sys
import time

from moto.moto_server.threaded_moto_server import ThreadedMotoServer


def main() -> None:
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    parent = os.getppid()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    _, bound = server.get_host_and_port()
    print(f"ready {bound}", flush=True)

    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    while not stop and os.getppid() == parent:
        time.sleep(0.5)
    server.stop()


if __name__ == "__main__":
    main()
