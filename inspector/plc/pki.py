"""The OPC UA server's certificates, in the layout OPC UA tools use: own/ holds the server's
certificate (DER) and private key (PEM, mode 0600), trusted/ the client certificates an
administrator let in, rejected/ the ones that knocked and were refused (an administrator moves
one to trusted/ to let that client in; the next connection reads the folder again).
"""

from __future__ import annotations

import hashlib
import os
import socket
from datetime import datetime, timezone
from pathlib import Path

from inspector.plc.jobs import PlcError

MAX_REJECTED = 200  # a scanner knocking with new certificates must not fill the disk
CERT_DAYS = 5 * 365  # plants do not want a line stopping on a yearly certificate renewal


def layout(pki_dir: Path) -> dict[str, Path]:
    return {"cert": pki_dir / "own" / "cert.der", "key": pki_dir / "own" / "key.pem",
            "trusted": pki_dir / "trusted", "rejected": pki_dir / "rejected"}


def default_application_uri() -> str:
    return f"urn:{socket.gethostname()}:inspector"


def ensure_server_certificate(pki_dir: Path, application_uri: str, hostnames: list[str] | None = None) -> bool:
    """Makes the server's key and self-signed certificate unless both are there; True when made.
    An existing pair is kept as it is (clients have trusted it), even when it names another URI."""
    from cryptography.x509.oid import ExtendedKeyUsageOID

    paths = layout(pki_dir)
    for d in ("trusted", "rejected"):
        paths[d].mkdir(parents=True, exist_ok=True)
    if paths["cert"].is_file() and paths["key"].is_file():
        return False
    paths["cert"].parent.mkdir(parents=True, exist_ok=True)
    os.chmod(paths["cert"].parent, 0o700)
    der, key_pem = _self_signed(application_uri, hostnames or [socket.gethostname(), "localhost"],
                                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH], "inspector")
    fd = os.open(paths["key"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key_pem)
    paths["cert"].write_bytes(der)
    return True


def make_client_certificate(cert_path: Path, key_path: Path, application_uri: str) -> None:
    """A client's key and certificate (tests, `inspector bench plc`, a commissioning laptop)."""
    from cryptography.x509.oid import ExtendedKeyUsageOID

    der, key_pem = _self_signed(application_uri, ["localhost"], [ExtendedKeyUsageOID.CLIENT_AUTH], "inspector client")
    cert_path.parent.mkdir(parents=True, exist_ok=True)
    cert_path.write_bytes(der)
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key_pem)


def _self_signed(application_uri: str, hostnames: list[str], uses, common_name: str) -> tuple[bytes, bytes]:
    from asyncua.crypto import cert_gen
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    key = cert_gen.generate_private_key()
    names = [x509.UniformResourceIdentifier(application_uri)] + [x509.DNSName(h) for h in hostnames]
    cert = cert_gen.generate_self_signed_app_certificate(
        key, common_name, {"organizationName": "inspector"}, names, extended=uses, days=CERT_DAYS)
    return cert.public_bytes(Encoding.DER), cert_gen.dump_private_key_as_pem(key)


def certificate_uri(pki_dir: Path) -> str | None:
    """The application URI the server's certificate names (the server must announce that one)."""
    from cryptography import x509

    try:
        cert = x509.load_der_x509_certificate(layout(pki_dir)["cert"].read_bytes())
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (OSError, ValueError, x509.ExtensionNotFound):
        return None
    uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    return uris[0] if uris else None


def thumbprint(der: bytes) -> str:
    return hashlib.sha1(der).hexdigest()  # noqa: S324 - the OPC UA thumbprint is SHA-1 by definition


def certificate_summary(pki_dir: Path) -> dict:
    """What `inspector doctor` and the status say of the server certificate."""
    from cryptography import x509

    p = layout(pki_dir)
    if not p["cert"].is_file():
        return {"present": False}
    try:
        der = p["cert"].read_bytes()
        cert = x509.load_der_x509_certificate(der)
    except (OSError, ValueError) as e:
        raise PlcError(f"OPC UA server certificate {p['cert']} is unreadable: {e}") from None
    days = (cert.not_valid_after_utc - datetime.now(timezone.utc)).days
    trusted = sorted(x.name for x in p["trusted"].iterdir()) if p["trusted"].is_dir() else []
    return {"present": True, "thumbprint": thumbprint(der), "expires_in_days": days, "trusted": trusted}


def keep_rejected(pki_dir: Path, der: bytes) -> None:
    """A refused client's certificate, for an administrator to inspect and perhaps trust."""
    d = layout(pki_dir)["rejected"]
    try:
        d.mkdir(parents=True, exist_ok=True)
        if len(list(d.iterdir())) < MAX_REJECTED:
            (d / f"{thumbprint(der)}.der").write_bytes(der)
    except OSError:
        pass  # a full or read-only disk must not turn a refusal into a crash
