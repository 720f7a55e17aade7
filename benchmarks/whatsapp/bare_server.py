"""The baseline of the webhook benchmark: the same stack with nothing of ours — Flask on gevent's WSGI
server answering every POST with an empty TwiML document (no signature, no database, no queue), on a
listening socket with TCP_NODELAY like ours (without it every kept-alive response waits ~40 ms).

    python benchmarks/whatsapp/bare_server.py PORT
"""

from gevent import monkey

monkey.patch_all()

import socket  # noqa: E402
import sys  # noqa: E402

from flask import Flask, Response  # noqa: E402
from gevent.pywsgi import WSGIServer  # noqa: E402

app = Flask("bare")


@app.post("/twilio/whatsapp")
def inbound() -> Response:
    return Response('<?xml version="1.0" encoding="UTF-8"?><Response/>', 200, mimetype="text/xml")


if __name__ == "__main__":
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    listener.bind(("127.0.0.1", int(sys.argv[1])))
    listener.listen(1024)
    WSGIServer(listener, app, log=None).serve_forever()
