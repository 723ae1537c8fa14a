"""``fanout http`` behind a proxy: the environment's HTTP(S)_PROXY/ALL_PROXY, NO_PROXY,
``--proxy``, and proxy credentials that never reach what is written. Through a real
forward proxy on 127.0.0.1 that records what it saw."""

from __future__ import annotations

import base64
import json
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from http_servers import ForwardProxy

from fanout.cli._http import http_command
from fanout.mock import MockServer

PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")
USER, PASSWORD = "alice", "pr0xy-pa55word"
TOKEN = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()


@pytest.fixture(autouse=True)
def no_proxy_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test sets the proxy variables it wants, and no others."""
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


@pytest.fixture
def proxy() -> Iterator[ForwardProxy]:
    with ForwardProxy("proxy-a") as server:
        yield server


def run(args: list[str], env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(http_command, args, env=env, catch_exceptions=False)


def records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def batch(tmp_path: Path, url: str) -> tuple[Path, Path, list[str]]:
    """Three requests to the mock server, ids unique to the test (``/stats`` counts them)."""
    ids = [f"px-{uuid.uuid4().hex[:10]}" for _ in range(3)]
    req, out = tmp_path / "req.jsonl", tmp_path / "out.jsonl"
    lines = [{"id": ids[0], "url": f"{url}/todos/1?id={ids[0]}"},
             {"id": ids[1], "method": "POST", "url": f"{url}/echo?id={ids[1]}", "json": {"a": 1}},
             {"id": ids[2], "url": f"{url}/echo", "params": {"id": ids[2]}}]
    req.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return req, out, ids


def through(proxy: ForwardProxy) -> list[str]:
    return [seen["target"] for seen in proxy.seen]


@pytest.mark.parametrize("variable", ["HTTP_PROXY", "http_proxy", "ALL_PROXY"])
def test_requests_go_through_the_proxy_named_in_the_environment(
    mock_server: MockServer, proxy: ForwardProxy, tmp_path: Path, variable: str
) -> None:
    req, out, ids = batch(tmp_path, mock_server.url)
    result = run([str(req), "-o", str(out)], env={variable: proxy.url})
    assert result.exit_code == 0, result.output
    # absolute-form requests, as a forward proxy gets them, one per request
    assert sorted(through(proxy)) == sorted([
        f"{mock_server.url}/todos/1?id={ids[0]}", f"{mock_server.url}/echo?id={ids[1]}",
        f"{mock_server.url}/echo?id={ids[2]}"])
    recs = records(out)
    assert recs[1]["json"]["headers"]["Via"] == "1.1 proxy-a"  # what the server saw
    assert recs[1]["json"]["json"] == {"a": 1}
    by_id = mock_server.stats()["by_id"]
    assert [by_id.get(i) for i in ids] == [1, 1, 1]


@pytest.mark.parametrize(
    ("no_proxy", "proxied"),
    [
        ("127.0.0.1", False),
        ("localhost, 127.0.0.1", False),
        ("127.0.0.0/8", False),
        ("*", False),
        ("example.com,10.0.0.0/8", True),
        ("127.0.0.2", True),
    ],
)
def test_no_proxy_sends_the_hosts_it_lists_direct(
    mock_server: MockServer, proxy: ForwardProxy, tmp_path: Path, no_proxy: str,
    proxied: bool
) -> None:
    req, out, _ = batch(tmp_path, mock_server.url)
    result = run([str(req), "-o", str(out)], env={"HTTP_PROXY": proxy.url, "NO_PROXY": no_proxy})
    assert result.exit_code == 0, result.output
    assert len(proxy.seen) == (3 if proxied else 0)
    assert ("Via" in records(out)[1]["json"]["headers"]) is proxied


def test_proxy_option_wins_over_the_environment_and_empty_means_direct(
    mock_server: MockServer, proxy: ForwardProxy, tmp_path: Path
) -> None:
    req, out, _ = batch(tmp_path, mock_server.url)
    env = {"HTTP_PROXY": proxy.url, "HTTPS_PROXY": proxy.url}
    with ForwardProxy("proxy-b") as other:
        assert run([str(req), "-o", str(out), "--proxy", other.url], env=env).exit_code == 0
        assert len(other.seen) == 3 and proxy.seen == []
        assert records(out)[1]["json"]["headers"]["Via"] == "1.1 proxy-b"
        # like curl: NO_PROXY applies to --proxy too
        env["NO_PROXY"] = "127.0.0.1"
        assert run([str(req), "-o", str(out), "--proxy", other.url], env=env).exit_code == 0
        assert len(other.seen) == 3
        del env["NO_PROXY"]
        assert run([str(req), "-o", str(out), "--proxy", ""], env=env).exit_code == 0
        assert len(other.seen) == 3 and proxy.seen == []


def secrets_in(*texts: str) -> list[str]:
    every = "\n".join(texts)
    return [s for s in (PASSWORD, TOKEN, f"{USER}:{PASSWORD}") if s in every]


@pytest.mark.parametrize("how", ["option", "environment"])
def test_proxy_credentials_reach_the_proxy_and_nothing_written(
    mock_server: MockServer, tmp_path: Path, how: str
) -> None:
    req, out, _ = batch(tmp_path, mock_server.url)
    summary = tmp_path / "summary.json"
    # a proxy that passes Proxy-Authorization on: the server echoes the credentials back
    with ForwardProxy("strict", (USER, PASSWORD), leaky=True) as strict:
        url = strict.url.replace("http://", f"http://{USER}:{PASSWORD}@")
        args, env = [str(req), "-o", str(out), "--summary-json", str(summary)], {}
        if how == "option":
            args += ["--proxy", url]
        else:
            env["HTTP_PROXY"] = url
        result = run([*args, "--include-headers"], env=env)
        assert result.exit_code == 0, result.output
        assert [s["headers"]["Proxy-Authorization"] for s in strict.seen] == [f"Basic {TOKEN}"] * 3
        echoed = records(out)[1]["json"]["headers"]
        assert echoed["Proxy-Authorization"] == "Basic [redacted]"
        assert secrets_in(out.read_text(), summary.read_text(), result.output) == []


def test_wrong_proxy_credentials_are_a_407_record_without_them(
    mock_server: MockServer, tmp_path: Path
) -> None:
    req, out, _ = batch(tmp_path, mock_server.url)
    with ForwardProxy("strict", (USER, "the-right-one")) as strict:
        url = strict.url.replace("http://", f"http://{USER}:{PASSWORD}@")
        result = run([str(req), "-o", str(out), "--proxy", url, "--retries", "2"])
    assert result.exit_code == 1
    recs = records(out)
    assert [(r["status"], r["attempts"]) for r in recs] == [(407, 1)] * 3
    assert "407" in recs[0]["error"]["message"]
    assert secrets_in(out.read_text(), result.output) == []


def test_an_https_request_asks_the_proxy_for_a_tunnel_with_the_credentials(
    tmp_path: Path
) -> None:
    req, out = tmp_path / "req.jsonl", tmp_path / "out.jsonl"
    req.write_text("https://127.0.0.1:9/never-reached\n")
    with ForwardProxy("tunnels") as tunnels:
        env = {"HTTPS_PROXY": tunnels.url.replace("http://", f"http://{USER}:{PASSWORD}@")}
        result = run([str(req), "-o", str(out), "--retries", "2"], env=env)
    assert result.exit_code == 1
    assert [(s["method"], s["target"]) for s in tunnels.seen] == [("CONNECT", "127.0.0.1:9")]
    assert tunnels.seen[0]["headers"]["Proxy-Authorization"] == f"Basic {TOKEN}"
    (rec,) = records(out)
    # the proxy's 403 to the tunnel is final: no retry
    assert rec["error"]["type"] == "ClientHttpProxyError" and rec["attempts"] == 1
    assert "403" in rec["error"]["message"]
    assert secrets_in(out.read_text(), result.output) == []


def test_an_unreachable_proxy_is_an_error_record_naming_it_without_credentials(
    tmp_path: Path, mock_server: MockServer
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    req, out, _ = batch(tmp_path, mock_server.url)
    summary = tmp_path / "summary.json"
    result = run([str(req), "-o", str(out), "--retries", "1", "--summary-json", str(summary),
                  "--proxy", f"http://{USER}:{PASSWORD}@127.0.0.1:{port}"])
    assert result.exit_code == 1
    recs = records(out)
    assert all(r["status"] is None and r["attempts"] == 2 for r in recs)
    assert recs[0]["error"]["type"] == "ClientProxyConnectionError"
    assert f"127.0.0.1:{port}" in recs[0]["error"]["message"]
    assert mock_server.stats()["by_id"].get(recs[0]["id"]) is None
    assert secrets_in(out.read_text(), summary.read_text(), result.output) == []


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--proxy", f"socks5://{USER}:{PASSWORD}@127.0.0.1:1080"], {},
         "--proxy: socks5://127.0.0.1:1080: only http:// and https:// proxies are supported"),
        ([], {"HTTPS_PROXY": f"socks5h://{USER}:{PASSWORD}@127.0.0.1:1080"},
         "HTTPS_PROXY (from the environment): socks5h://127.0.0.1:1080: only http://"),
        (["--proxy", f"http://{USER}:{PASSWORD}@127.0.0.1:99999"], {},
         "--proxy is not a valid proxy URL"),
        (["--proxy", f"http://{USER}:{PASSWORD}@127.0.0.1:3128/path"], {},
         "a proxy URL is scheme://[user:password@]host[:port]"),
    ],
)
def test_a_bad_proxy_setting_is_a_usage_error_without_its_credentials(
    tmp_path: Path, args: list[str], env: dict[str, str], message: str
) -> None:
    req = tmp_path / "req.jsonl"
    req.write_text("http://127.0.0.1:9/x\n")
    result = run([str(req), "-o", str(tmp_path / "out.jsonl"), *args], env=env)
    assert result.exit_code == 2
    assert message in result.stderr and result.stderr.count("\n") == 1
    assert secrets_in(result.output) == []
