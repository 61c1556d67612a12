"""HTTPS for the console (issue 16): the certificate `pbx init` makes, `pbx serve
--web-tls/--web-cert/--web-key`, and a real HTTPS console whose session cookie is Secure
and whose browser phone registers over wss."""

from __future__ import annotations

import hashlib
import json
import re
import ssl
import stat
import sys
import types
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from typer.testing import CliRunner

from acd.app import AcdApplication
from acd.web.console import WebConsole
from acd.web.tls import ensure_certificate, server_context
from cli.app import app
from ivr.player import PromptPlayer
from ivr.prompts import PromptStore
from pbx.api import ConfigError
from pbx.config import Settings
from pbx.server import PbxServer
from pbx.store import Store
from tests.interop.peers import free_port
from tests.interop.phones import PASSWORDS


def test_certificate_made_once_with_its_fingerprint(tmp_path: Path) -> None:
    made = ensure_certificate(tmp_path)
    assert made.created
    der = ssl.PEM_cert_to_DER_cert(made.cert.read_text())
    digest = hashlib.sha256(der).hexdigest().upper()
    assert made.fingerprint.replace(":", "") == digest
    assert stat.S_IMODE(made.key.stat().st_mode) == 0o600
    again = ensure_certificate(tmp_path)
    assert not again.created and again.fingerprint == made.fingerprint
    # It serves: the pair loads, and it names localhost and 127.0.0.1.
    server_context(made.cert, made.key)
    decoded = ssl._ssl._test_decode_cert(str(made.cert))  # type: ignore[attr-defined]
    names = {value for _, value in decoded["subjectAltName"]}
    assert {"localhost", "127.0.0.1"} <= names


def test_bad_files_are_one_clear_error(tmp_path: Path) -> None:
    made = ensure_certificate(tmp_path / "a")
    other = ensure_certificate(tmp_path / "b")
    with pytest.raises(ConfigError, match="cannot use"):
        server_context(made.cert, other.key)  # not a pair
    with pytest.raises(ConfigError, match="cannot use"):
        server_context(tmp_path / "missing.pem", made.key)


def test_init_prints_the_fingerprint(tmp_path: Path) -> None:
    runner = CliRunner()
    first = runner.invoke(app, ["init", "--data-dir", str(tmp_path / "d")])
    assert first.exit_code == 0, first.output
    found = re.search(r"SHA-256 fingerprint ((?:[0-9A-F]{2}:){31}[0-9A-F]{2})", first.output)
    assert found is not None, first.output
    assert ensure_certificate(tmp_path / "d").fingerprint == found.group(1)
    second = runner.invoke(app, ["init", "--data-dir", str(tmp_path / "d")])
    assert found.group(1) in second.output  # the same certificate, not a new one


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[list[Any]]:
    runs: list[list[Any]] = []

    def run(settings: Any, applications: Sequence[object] = (), **_: object) -> None:
        runs.append(list(applications))

    module = types.ModuleType("pbx.server")
    module.run = run  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pbx.server", module)
    return runs


def serve(tmp_path: Path, *args: str) -> Any:
    return CliRunner().invoke(app, ["serve", "--data-dir", str(tmp_path / "d"), *args])


def test_serve_tls_options(tmp_path: Path, served: list[list[Any]]) -> None:
    assert serve(tmp_path).exit_code == 0
    assert served[-1][-1].ssl_context is None  # plain HTTP unless asked
    result = serve(tmp_path, "--web-tls")
    assert result.exit_code == 0, result.output
    assert isinstance(served[-1][-1].ssl_context, ssl.SSLContext)
    assert "SHA-256 fingerprint" in result.output
    own = ensure_certificate(tmp_path / "own")
    result = serve(tmp_path, "--web-cert", str(own.cert), "--web-key", str(own.key))
    assert result.exit_code == 0 and isinstance(served[-1][-1].ssl_context, ssl.SSLContext)
    result = serve(tmp_path, "--web-cert", str(own.cert))
    assert result.exit_code == 1
    assert result.stderr == "pbx: error: give --web-cert and --web-key together\n"
    result = serve(tmp_path, "--web-cert", str(own.key), "--web-key", str(own.key))
    assert result.exit_code == 1 and result.stderr.startswith("pbx: error: cannot use")
    # The browser phones' codec preference rides along.
    assert served[-1][-1].phone_codec == "opus"
    assert serve(tmp_path, "--web-phone-codec", "g711").exit_code == 0
    assert served[-1][-1].phone_codec == "g711"
    result = serve(tmp_path, "--web-phone-codec", "speex")
    assert result.stderr == "pbx: error: --web-phone-codec 'speex': choose opus or g711\n"


async def test_https_console_secure_cookie_and_phone_over_wss(tmp_path: Path) -> None:
    made = ensure_certificate(tmp_path)
    store = await Store.open(tmp_path / "pbx.sqlite3")
    await store.settings.set_default("realm", "aiopbx")
    await store.users.add("1003", PASSWORDS["1003"], "aiopbx")
    await store.close()
    acd = AcdApplication(PromptPlayer(PromptStore(tmp_path / "prompts")))
    console = WebConsole(acd, "127.0.0.1", 0, ssl_context=server_context(made.cert, made.key))
    server = PbxServer(
        Settings(data_dir=tmp_path, sip_port=free_port()), applications=[acd, console]
    )
    await server.start()
    trust = ssl.create_default_context(cafile=str(made.cert))
    base = f"https://127.0.0.1:{console.port}"
    try:
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=trust),
            cookie_jar=aiohttp.CookieJar(unsafe=True),
            timeout=aiohttp.ClientTimeout(total=15),
        ) as http:
            async with http.get(base + "/login") as page:
                token = re.search(r'name=csrf value="([^"]+)"', await page.text())
                assert token is not None
            form = {"csrf": token.group(1), "username": "1003", "password": PASSWORDS["1003"]}
            async with http.post(base + "/login", data=form, allow_redirects=False) as login:
                assert login.status == 303
                cookie = login.headers.getall("Set-Cookie")
                session = [c for c in cookie if c.startswith("pbx_session=")]
                assert session and "Secure" in session[0] and "HttpOnly" in session[0]
            async with http.ws_connect(base.replace("https", "wss") + "/ws/phone") as ws:
                hello = json.loads(await ws.receive_str(timeout=10))
                assert hello == {"type": "ready", "user": "1003"}
                assert server.registrar.location.get("1003")  # a contact of 1003 now
            # Plain HTTP to the HTTPS port gets nowhere.
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as plain:
            with pytest.raises(aiohttp.ClientError):
                async with plain.get(f"http://127.0.0.1:{console.port}/login") as answer:
                    await answer.read()
    finally:
        await server.stop()
