# Started by tests/src/moto.rs: a moto server (a real AWS emulator) on 127.0.0.1 at a port the
# kernel picks (port 0), reported as one line on stdout. It stops when its stdin closes: when
# the test process drops it or exits, however it exits.
import logging
import sys

# Request lines are noise; errors (a moto traceback) still reach the test's stderr.
logging.getLogger("werkzeug").setLevel(logging.ERROR)

from moto.server import ThreadedMotoServer

server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
print(server.get_host_and_port()[1], flush=True)
sys.stdin.read()
