"""SimpleSAMLphp (Debian package) as a real SAML 2.0 IdP on loopback.

The config dir is generated into a temp dir at test time: an IdP key pair made
with ``cryptography``, the exampleauth module with a few users, and our SP's
metadata (rewritten per test, since each test database makes its own SP key).
PHP's built-in server re-reads the metadata files on every request.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

SIMPLESAMLPHP_ROOT = Path("/usr/share/simplesamlphp")
URI_FORMAT = "urn:oasis:names:tc:SAML:2.0:attrname-format:uri"

# Attribute names as an Entra-like district IdP would send them.
USERS: dict[str, dict[str, list[str]]] = {
    "student1:studentpass": {
        "uid": ["stu-0001"],
        "mail": ["ada.student@north.example.edu"],
        "givenName": ["Ada"],
        "sn": ["Student"],
        "displayName": ["Ada Student"],
        "employeeNumber": ["SIS-STU-1"],
        "eduPersonAffiliation": ["student"],
    },
    "teacher1:teacherpass": {
        "uid": ["tch-0001"],
        "mail": ["tom.teacher@north.example.edu"],
        "givenName": ["Tom"],
        "sn": ["Teacher"],
        "displayName": ["Tom Teacher"],
        "employeeNumber": ["SIS-TCH-1"],
        "eduPersonAffiliation": ["faculty", "staff"],
    },
    "outsider1:outsiderpass": {
        "uid": ["out-0001"],
        "mail": ["olly@gmail.com"],
        "givenName": ["Olly"],
        "sn": ["Outsider"],
        "displayName": ["Olly Outsider"],
        "eduPersonAffiliation": ["student"],
    },
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_key_pair(common_name: str, *, days: int = 365) -> tuple[str, str]:
    """A fresh RSA key and self-signed certificate, as PEM strings."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=days))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return key_pem, cert.public_bytes(serialization.Encoding.PEM).decode()


def _php(value: object) -> str:
    """Python value -> PHP literal (strings, bools, ints, lists, dicts)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_php(v) for v in value) + "]"
    if isinstance(value, dict):  # PHP arrays: int keys stay ints ({0: x} is a list entry)
        return "[" + ", ".join(f"{_php(k)} => {_php(v)}" for k, v in value.items()) + "]"
    raise TypeError(type(value))


@dataclass
class SimpleSamlIdP:
    port: int
    config_dir: Path
    process: subprocess.Popen[bytes] | None = None
    cert_pem: str = ""
    log: Path = field(default_factory=Path)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def entity_id(self) -> str:
        return f"{self.base_url}/saml2/idp/metadata.php"

    @property
    def metadata_url(self) -> str:
        return f"{self.base_url}/saml2/idp/metadata.php"

    def register_sp(
        self,
        *,
        entity_id: str,
        acs_url: str,
        slo_url: str,
        cert_pem: str,
        extra_cert_pems: tuple[str, ...] = (),
    ) -> None:
        """Write our SP into saml20-sp-remote.php (read again on every request).
        ``extra_cert_pems``: more signing certificates (an SP key rollover)."""

        def body(pem: str) -> str:
            return "".join(line for line in pem.strip().splitlines() if "-----" not in line)

        sp: dict[str, object] = {
            "AssertionConsumerService": [
                {"Binding": "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST", "Location": acs_url}
            ],
            "SingleLogoutService": [
                {"Binding": "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect", "Location": slo_url}
            ],
            "NameIDFormat": "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent",
            "simplesaml.nameidattribute": "uid",
            "keys": [
                {
                    "signing": True,
                    "encryption": False,
                    "type": "X509Certificate",
                    "X509Certificate": body(pem),
                }
                for pem in (cert_pem, *extra_cert_pems)
            ],
            "validate.authnrequest": True,
            "validate.logout": True,
            "sign.logout": True,
            "attributes.NameFormat": URI_FORMAT,
            "signature.algorithm": "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
        }
        text = f"<?php\n$metadata[{_php(entity_id)}] = {_php(sp)};\n"
        (self.config_dir / "metadata" / "saml20-sp-remote.php").write_text(text)

    def write_hosted(self, *, key_name: str = "idp", new_certificate: str | None = None) -> None:
        """(Re)write the hosted IdP: which key pair signs, and an optional
        ``new_certificate`` published beside it (SimpleSAMLphp's key rollover)."""
        hosted: dict[str, object] = {
            "host": "__DEFAULT__",
            "privatekey": str(self.config_dir / "cert" / f"{key_name}.key"),
            "certificate": str(self.config_dir / "cert" / f"{key_name}.crt"),
            "auth": "example-userpass",
            "attributes.NameFormat": URI_FORMAT,
            "signature.algorithm": "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
            "saml20.sign.assertion": True,
            "saml20.sign.response": True,
            "SingleLogoutServiceBinding": "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect",
        }
        if new_certificate:
            hosted["new_certificate"] = str(self.config_dir / "cert" / f"{new_certificate}.crt")
        (self.config_dir / "metadata" / "saml20-idp-hosted.php").write_text(
            "<?php\n$metadata['__DYNAMIC:1__'] = " + _php(hosted) + ";\n"
        )

    def make_key(self, name: str) -> str:
        key_pem, cert_pem = make_key_pair(f"simplesamlphp-{name}")
        (self.config_dir / "cert" / f"{name}.key").write_text(key_pem)
        (self.config_dir / "cert" / f"{name}.crt").write_text(cert_pem)
        return cert_pem

    def start(self) -> None:
        env = {**os.environ, "SIMPLESAMLPHP_CONFIG_DIR": str(self.config_dir)}
        self.process = subprocess.Popen(
            ["php", "-S", f"127.0.0.1:{self.port}", "-t", str(SIMPLESAMLPHP_ROOT / "www")],
            env=env,
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                if requests.get(self.metadata_url, timeout=2).status_code == 200:
                    return
            except requests.ConnectionError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"SimpleSAMLphp did not start; see {self.log}: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
            self.process = None


def build(root: Path | None = None) -> SimpleSamlIdP:
    """Generate a config dir for SimpleSAMLphp 1.19 (Debian bookworm) and return the IdP."""
    root = Path(root or tempfile.mkdtemp(prefix="ssp-"))
    port = free_port()
    for sub in ("metadata", "cert", "tmp", "data", "log"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    key_pem, cert_pem = make_key_pair("simplesamlphp-test-idp")
    (root / "cert" / "idp.key").write_text(key_pem)
    (root / "cert" / "idp.crt").write_text(cert_pem)
    # The Debian build ships a config dir of its own; attributemap is reused as is.
    shutil.copytree("/etc/simplesamlphp/attributemap", root / "attributemap", dirs_exist_ok=True)
    config = {
        "baseurlpath": f"http://127.0.0.1:{port}/",
        "certdir": str(root / "cert") + "/",
        "loggingdir": str(root / "log") + "/",
        "datadir": str(root / "data") + "/",
        "tempdir": str(root / "tmp"),
        "metadatadir": str(root / "metadata") + "/",
        "technicalcontact_name": "Tests",
        "technicalcontact_email": "tests@example.org",
        "secretsalt": "test-salt-" + os.urandom(8).hex(),
        "auth.adminpassword": "test-admin-" + os.urandom(8).hex(),
        "admin.protectindexpage": False,
        "admin.protectmetadata": False,
        "timezone": "UTC",
        "logging.level": 7,
        "logging.handler": "file",
        "logging.logfile": "simplesamlphp.log",
        "enable.saml20-idp": True,
        "enable.shib13-idp": False,
        "module.enable": {"exampleauth": True, "core": True, "saml": True, "admin": True},
        "session.cookie.secure": False,
        "session.cookie.samesite": None,
        "session.phpsession.savepath": str(root / "tmp"),
        "store.type": "phpsession",
        "language.default": "en",
        "debug": {"saml": False, "backtraces": True, "validatexml": False},
        "showerrors": True,
        "errorreporting": False,
        "trusted.url.domains": [],
    }
    # null cannot go through _php; samesite null means "do not send the attribute".
    config_php = "<?php\n$config = " + _php({k: v for k, v in config.items() if v is not None}) + ";\n"
    config_php += "$config['session.cookie.samesite'] = null;\n"
    (root / "config.php").write_text(config_php)
    userpass: dict[object, object] = {0: "exampleauth:UserPass", **USERS}
    authsources = {"admin": ["core:AdminPassword"], "example-userpass": userpass}
    (root / "authsources.php").write_text("<?php\n$config = " + _php(authsources) + ";\n")
    (root / "metadata" / "saml20-sp-remote.php").write_text("<?php\n")
    idp = SimpleSamlIdP(port=port, config_dir=root, cert_pem=cert_pem, log=root / "log" / "php-server.log")
    idp.write_hosted()
    return idp
