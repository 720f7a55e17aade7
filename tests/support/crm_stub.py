"""A tenant's CRM on 127.0.0.1 for the example flows' ``webhook`` node: answers the account lookup.

``accounts`` maps an account number to the JSON the CRM answers; an unknown number gets 404. A
request signed with ``X-IVR-Signature`` is verified with the receiver's copy of the secret
(`ivr_flows.webhook_signing.verify`, without the replay window: the flows under test run on a
fixed clock); a wrong signature gets 401. Every request is kept.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ivr_flows.webhook_signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify


class CrmStub:
    def __init__(self, accounts: dict[str, Any], secret: str = "crm-secret") -> None:
        self.accounts = accounts
        self.secret = secret
        self.requests: list[dict[str, Any]] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                # No replay window: the flows under test run on a fixed clock (business hours).
                signed = verify(stub.secret, self.headers.get(TIMESTAMP_HEADER, ""), body,
                                self.headers.get(SIGNATURE_HEADER, ""))
                request = json.loads(body or b"{}")
                stub.requests.append({"path": self.path, "signed": signed, "body": request})
                answer = stub.accounts.get(str(request.get("account"))) if signed else None
                status = 401 if not signed else (200 if answer is not None else 404)
                payload = json.dumps(answer if answer is not None else {"error": "no"}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
