"""HTTPS for the web console: browsers give the microphone only to secure pages.

`pbx init` makes a self-signed certificate in the data directory (`web-cert.pem`, and
`web-key.pem` readable by its owner only) and prints its SHA-256 fingerprint, so that
an agent can check the certificate their browser is shown against it before trusting
it. `pbx serve --web-tls` serves the console with it; `--web-cert/--web-key` serve it
with files of the admin's own (a certificate of the office's CA, or a public one).

The certificate names every address a browser may use for this machine: localhost,
127.0.0.1, ::1, the host's name (and NAME.local for mDNS), and the machine's own IPv4
addresses at the time it is made. A key of ECDSA P-256; valid 825 days (what browsers
accept of a certificate of a private CA).
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import logging
import os
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

from pbx.api import ConfigError

__all__ = ["CERT_FILE", "KEY_FILE", "WebCertificate", "ensure_certificate", "server_context"]

log = logging.getLogger(__name__)

CERT_FILE = "web-cert.pem"
KEY_FILE = "web-key.pem"
VALID_DAYS = 825


@dataclass(frozen=True, slots=True)
class WebCertificate:
    """A certificate and key on disk, and the certificate's SHA-256 fingerprint."""

    cert: Path
    key: Path
    fingerprint: str
    created: bool = False


def fingerprint(cert: Path) -> str:
    """SHA-256 of the certificate's DER bytes, as browsers show it (AB:CD:...).

    Raises: ConfigError when the file is not a PEM certificate.
    """
    try:
        der = ssl.PEM_cert_to_DER_cert(cert.read_text("ascii"))
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{cert} is not a readable PEM certificate ({exc})") from None
    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def _names() -> tuple[list[str], list[str]]:
    """DNS names and IP addresses this machine may be reached by."""
    host = socket.gethostname()
    dns = ["localhost", host, f"{host.split('.')[0]}.local"]
    ips = ["127.0.0.1", "::1"]
    try:
        import ifaddr  # aioice's dependency: lists the interfaces without DNS

        for adapter in ifaddr.get_adapters():
            for ip in adapter.ips:
                if isinstance(ip.ip, str) and ip.ip not in ips:
                    ips.append(ip.ip)
    except ImportError:  # pragma: no cover - aiortc brings it
        pass
    return list(dict.fromkeys(dns)), ips


def ensure_certificate(data_dir: Path) -> WebCertificate:
    """The data directory's certificate, made (self-signed) when it is missing.

    Raises: ConfigError when the files exist but cannot be read.
    """
    cert, key = data_dir / CERT_FILE, data_dir / KEY_FILE
    if cert.exists() and key.exists():
        return WebCertificate(cert, key, fingerprint(cert))
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    private = ec.generate_private_key(ec.SECP256R1())
    dns, ips = _names()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"aiopbx console {dns[1]}")])
    now = datetime.datetime.now(datetime.UTC)
    alt = [x509.DNSName(n) for n in dns] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .sign(private, hashes.SHA256())
    )
    data_dir.mkdir(parents=True, exist_ok=True)
    pem_key = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    descriptor = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as out:
        out.write(pem_key)
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    made = WebCertificate(cert, key, fingerprint(cert), created=True)
    log.info("web console certificate made: %s (SHA-256 %s)", cert, made.fingerprint)
    return made


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    """A TLS server context (TLS 1.2 or later) with this certificate and key.

    Raises: ConfigError when they cannot be loaded (missing, unreadable, not a pair).
    """
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot use {cert} with {key} for HTTPS ({exc})") from None
    return context
