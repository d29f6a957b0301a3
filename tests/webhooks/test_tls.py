"""HTTPS deliveries: the certificate is verified against the endpoint's host name, although the
connection goes to the address that was checked."""

from __future__ import annotations

import datetime
import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import urllib3
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from webhooks import transport

NAME = "hooks.acme.test"


def self_signed(tmp_path, name: str):
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


@pytest.fixture
def tls_receiver(tmp_path, monkeypatch, settings):
    cert_file, key_file = self_signed(tmp_path, NAME)
    hosts = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            hosts.append(self.headers["Host"])
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    real_getaddrinfo = socket.getaddrinfo

    def resolver(host, *args, **kwargs):
        return real_getaddrinfo(
            "127.0.0.1" if host.endswith(".acme.test") else host, *args, **kwargs
        )

    monkeypatch.setattr(transport.socket, "getaddrinfo", resolver)
    settings.WEBHOOK_REQUIRE_HTTPS = True
    yield server.server_address[1], cert_file, hosts
    server.shutdown()
    server.server_close()


def test_an_untrusted_certificate_is_refused(tls_receiver):
    port, _, hosts = tls_receiver
    with pytest.raises(urllib3.exceptions.SSLError, match="CERTIFICATE_VERIFY_FAILED"):
        transport.post(f"https://{NAME}:{port}/in", body=b"{}", headers={}, timeout=3)
    assert hosts == []


def test_a_trusted_certificate_for_the_name_is_accepted_over_the_checked_address(
    tls_receiver, monkeypatch
):
    port, cert_file, hosts = tls_receiver
    monkeypatch.setenv("SSL_CERT_FILE", str(cert_file))
    sent = transport.post(f"https://{NAME}:{port}/in", body=b"{}", headers={}, timeout=3)
    assert sent.status == 204
    assert hosts == [f"{NAME}:{port}"]


def test_a_certificate_for_another_name_is_refused(tls_receiver, monkeypatch):
    port, cert_file, hosts = tls_receiver
    monkeypatch.setenv("SSL_CERT_FILE", str(cert_file))
    with pytest.raises(urllib3.exceptions.SSLError, match=r"(?i)hostname|match"):
        transport.post(f"https://other.acme.test:{port}/in", body=b"{}", headers={}, timeout=3)
    assert hosts == []


def test_plain_http_is_refused_when_https_is_required(tls_receiver):
    with pytest.raises(transport.UnsafeDestination, match="HTTPS"):
        transport.post(f"http://{NAME}/in", body=b"{}", headers={}, timeout=3)
