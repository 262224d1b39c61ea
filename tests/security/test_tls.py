"""`eventml serve --tls-cert --tls-key`: HTTPS, and one line for a bad or missing file."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import ssl
import subprocess
import sys
import urllib.request
from pathlib import Path

import orjson
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from eventml.cli.app import main

REPO = Path(__file__).resolve().parents[2]


def self_signed(where: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=1)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = where / "cert.pem", where / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


def test_serve_speaks_https_with_the_given_certificate(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    env = {k: v for k, v in os.environ.items() if k not in ("EVENTML_BROKER", "EVENTML_MODELS")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "eventml", "serve", "--broker", f"embedded://{tmp_path}/data",
         "--host", "127.0.0.1", "--port", "0", "--tls-cert", str(cert), "--tls-key", str(key),
         "--log-level", "warning"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=env, cwd=REPO)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        url = first.split(" at ", 1)[1].split()[0]
        assert url.startswith("https://"), first
        trusted = ssl.create_default_context(cafile=str(cert))
        with urllib.request.urlopen(f"{url}/healthz", timeout=10, context=trusted) as r:
            assert orjson.loads(r.read()) == {"status": "ok"}
        with pytest.raises(urllib.error.URLError):  # an untrusting client refuses it: real TLS
            urllib.request.urlopen(f"{url}/healthz", timeout=10, context=ssl.create_default_context())
    finally:
        proc.terminate()
        proc.wait(10)


def test_a_bad_tls_option_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cert, _key = self_signed(tmp_path)
    for args, says in [(["--tls-cert", str(cert)], "needs both --tls-cert and --tls-key"),
                       (["--tls-cert", str(cert), "--tls-key", str(tmp_path / "none.pem")], "--tls-key"),
                       (["--tls-cert", str(cert), "--tls-key", str(cert)], "--tls-cert")]:
        assert main(["serve", "--broker", "memory://", "--port", "0", *args]) != 0
        err = capsys.readouterr().err.strip()
        assert says in err and len(err.splitlines()) == 1 and "Traceback" not in err, (args, err)
