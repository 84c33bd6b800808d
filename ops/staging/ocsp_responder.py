"""A minimal OCSP responder for the staging ACME server (Pebble has none of its own): answers
"good" for every certificate Pebble's intermediate issued, signed with that intermediate's
key, which Pebble's management API hands out. Staging only: it knows no revocations.

    python -m ops.staging.ocsp_responder ADDRESS PORT ISSUER_CERT ISSUER_KEY
"""

import base64
import datetime
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp


def responder(issuer, key):
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            self.answer(self.rfile.read(int(self.headers.get("Content-Length", 0))))

        def do_GET(self):
            # RFC 6960 A.1: the DER request, base64 and URL-encoded, as the path (nginx's way).
            try:
                body = base64.b64decode(unquote(self.path.lstrip("/")))
            except ValueError:
                self.send_error(400)
                return
            self.answer(body)

        def answer(self, body):
            try:
                request = ocsp.load_der_ocsp_request(body)
            except ValueError:
                self.send_error(400)
                return
            now = datetime.datetime.now(datetime.timezone.utc)
            # The certificate itself is not needed: a response is about a serial.
            builder = ocsp.OCSPResponseBuilder().add_response_by_hash(
                issuer_name_hash=request.issuer_name_hash, issuer_key_hash=request.issuer_key_hash,
                serial_number=request.serial_number, algorithm=request.hash_algorithm,
                cert_status=ocsp.OCSPCertStatus.GOOD, this_update=now,
                next_update=now + datetime.timedelta(hours=12), revocation_time=None,
                revocation_reason=None).responder_id(ocsp.OCSPResponderEncoding.HASH, issuer)
            data = builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)
            self.send_response(200)
            self.send_header("Content-Type", "application/ocsp-response")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, fmt, *args):
            sys.stderr.write("ocsp: " + fmt % args + "\n")

    return Handler


def main(address, port, cert_file, key_file):
    with open(cert_file, "rb") as f:
        issuer = x509.load_pem_x509_certificate(f.read())
    with open(key_file, "rb") as f:
        key = serialization.load_pem_private_key(f.read(), password=None)
    ThreadingHTTPServer((address, int(port)), responder(issuer, key)).serve_forever()


if __name__ == "__main__":
    main(*sys.argv[1:5])
