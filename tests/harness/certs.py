"""A throw-away certificate authority for the test servers, made with ``trustme``.

Every file is PEM and lives in the directory passed to :func:`make_pki`. Clients verify the
servers with ``ssl.create_default_context(cafile=pki.ca_file)``, exactly what a user would do
with ``--ca-file``; a client that uses the system bundle instead must fail verification.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import trustme

__all__ = ["SERVER_IDENTITIES", "TestPKI", "make_pki"]

#: Names the main server certificate is valid for. 127.0.0.2 is included because Dovecot also
#: listens there (see ``DovecotServer.tls_required_host``).
SERVER_IDENTITIES = ("localhost", "127.0.0.1", "127.0.0.2")


@dataclass(frozen=True)
class TestPKI:
    """Paths of the PEM files of one test CA and the certificates it issued."""

    # Not a test class, whatever its name says.
    __test__ = False

    ca_file: Path
    """The CA certificate: what a user passes as ``--ca-file``."""
    server_cert: Path
    """Leaf + chain for ``localhost``, ``127.0.0.1`` and ``127.0.0.2``."""
    server_key: Path
    wrong_host_cert: Path
    """Signed by the same CA but valid only for ``wrong.example`` (hostname-mismatch tests)."""
    wrong_host_key: Path

    def server_context(self, *, wrong_host: bool = False) -> ssl.SSLContext:
        """Return a server-side TLS context presenting the server (or wrong-host) certificate."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        if wrong_host:
            context.load_cert_chain(self.wrong_host_cert, self.wrong_host_key)
        else:
            context.load_cert_chain(self.server_cert, self.server_key)
        return context

    def client_context(self) -> ssl.SSLContext:
        """Return a client context that trusts only the test CA (with hostname checking)."""
        return ssl.create_default_context(cafile=str(self.ca_file))


def make_pki(directory: Path) -> TestPKI:
    """Create a fresh CA and its certificates as PEM files in ``directory``.

    ``directory`` is created if missing. The files are world-readable on purpose: Dovecot reads
    them as root, but a test may hand them to a process running as another user.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA(organization_name="eddymail test CA")
    server = ca.issue_cert(*SERVER_IDENTITIES)
    wrong = ca.issue_cert("wrong.example")

    pki = TestPKI(
        ca_file=directory / "ca.pem",
        server_cert=directory / "server-cert.pem",
        server_key=directory / "server-key.pem",
        wrong_host_cert=directory / "wrong-host-cert.pem",
        wrong_host_key=directory / "wrong-host-key.pem",
    )
    ca.cert_pem.write_to_path(str(pki.ca_file))
    _write_chain(server, pki.server_cert)
    server.private_key_pem.write_to_path(str(pki.server_key))
    _write_chain(wrong, pki.wrong_host_cert)
    wrong.private_key_pem.write_to_path(str(pki.wrong_host_key))
    return pki


def _write_chain(leaf: trustme.LeafCert, path: Path) -> None:
    # Leaf first, then any intermediates: the order both OpenSSL and Dovecot expect.
    path.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
