"""The keep-alive client that carries every reply: framing, reuse, failures, TLS."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import json
import ssl

import aiohttp
import pytest
from aiohttp import web
from yarl import URL

from bot.wecom.keepalive import HttpError, KeepAliveClient


async def raw_server(answers: list[bytes], *, close_after: bool = False, ssl_ctx=None):
    """A server that answers each request on a connection with the next canned bytes."""
    seen = {"connections": 0, "requests": []}
    queue = list(answers)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        seen["connections"] += 1
        try:
            while queue:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                body = await reader.readexactly(length)
                seen["requests"].append((head, body))
                answer = queue.pop(0)
                if answer:
                    writer.write(answer)
                    await writer.drain()
                if close_after or not answer:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=ssl_ctx)
    port = server.sockets[0].getsockname()[1]
    return server, port, seen


async def test_json_post_reuses_one_connection(aiohttp_server):
    peers = set()

    async def send(request: web.Request) -> web.Response:
        peers.add(request.transport.get_extra_info("peername"))
        data = await request.json()
        return web.json_response({"errcode": 0, "echo": data["touser"], "q": request.query["access_token"]})

    app = web.Application()
    app.router.add_post("/cgi-bin/message/send", send)
    server = await aiohttp_server(app)
    client = KeepAliveClient()
    url = URL(f"http://127.0.0.1:{server.port}/cgi-bin/message/send").with_query(access_token="t+k/=")
    for user in ("lisi", "wangwu", "张三"):
        r = await client.request("POST", url, ('{"touser":"%s"}' % user).encode(), "application/json", 5)
        assert r.status == 200 and r.headers["content-type"].startswith("application/json")
        assert json.loads(r.body) == {"errcode": 0, "echo": user, "q": "t+k/="}
    assert len(peers) == 1
    await client.close()


async def test_chunked_and_close_delimited_bodies():
    chunked = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"7;ext=1\r\n{\"errco\r\n9\r\nde\":0,\"a\"\r\n3\r\n:1}\r\n0\r\nX-Trailer: y\r\n\r\n")
    plain = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"
    server, port, seen = await raw_server([chunked, plain])
    client = KeepAliveClient()
    url = URL(f"http://127.0.0.1:{port}/x")
    assert (await client.request("POST", url, b"{}", "application/json", 5)).body == b'{"errcode":0,"a":1}'
    assert (await client.request("POST", url, b"{}", "application/json", 5)).body == b"{}"
    assert seen["connections"] == 1  # a chunked answer leaves the connection reusable
    server.close()

    old = b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{\"errcode\":0}"
    server, port, seen = await raw_server([old, plain], close_after=True)
    url = URL(f"http://127.0.0.1:{port}/x")
    assert (await client.request("POST", url, b"{}", "application/json", 5)).body == b'{"errcode":0}'
    assert (await client.request("POST", url, b"{}", "application/json", 5)).body == b"{}"
    assert seen["connections"] == 2  # a body ended by closing: a fresh connection next time
    await client.close()
    server.close()


async def test_a_connection_the_server_closed_is_not_reused():
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"
    server, port, seen = await raw_server([ok, ok], close_after=True)
    client = KeepAliveClient()
    url = URL(f"http://127.0.0.1:{port}/x")
    await client.request("POST", url, b"{}", "application/json", 5)
    await asyncio.sleep(0.05)  # the server's FIN arrives while the connection is idle
    assert (await client.request("POST", url, b"{}", "application/json", 5)).body == b"{}"
    assert seen["connections"] == 2
    await client.close()
    server.close()


async def test_failures_are_connection_errors_the_transport_retries():
    client = KeepAliveClient()
    server, port, _ = await raw_server([b""])  # reads the request, closes without a word
    url = URL(f"http://127.0.0.1:{port}/x")
    with pytest.raises(HttpError) as e:
        await client.request("POST", url, b"{}", "application/json", 5)
    assert isinstance(e.value, aiohttp.ClientError)
    server.close()

    truncated = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{}"
    server, port, _ = await raw_server([truncated], close_after=True)
    with pytest.raises(HttpError):
        await client.request("POST", URL(f"http://127.0.0.1:{port}/x"), b"{}", "application/json", 5)
    server.close()

    huge = b"HTTP/1.1 200 OK\r\nContent-Length: 999999999999\r\n\r\n"
    server, port, _ = await raw_server([huge])
    with pytest.raises(HttpError, match="too large"):
        await client.request("POST", URL(f"http://127.0.0.1:{port}/x"), b"{}", "application/json", 5)
    server.close()

    server, port, _ = await raw_server([b"HTTP/1.1 200 OK\r\nX: " + b"a" * 70_000])
    with pytest.raises(HttpError, match="too large"):
        await client.request("POST", URL(f"http://127.0.0.1:{port}/x"), b"{}", "application/json", 5)
    server.close()

    refused = URL(f"http://127.0.0.1:{port}/x")  # that server is gone
    with pytest.raises(HttpError):
        await client.request("POST", refused, b"{}", "application/json", 5)
    await client.close()


async def test_a_silent_server_times_out():
    async def handle(reader, writer):
        await reader.read(100)
        await asyncio.sleep(5)

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = KeepAliveClient()
    loop = asyncio.get_running_loop()
    t = loop.time()
    with pytest.raises(asyncio.TimeoutError):
        await client.request("POST", URL(f"http://127.0.0.1:{port}/x"), b"{}", "application/json", 0.3)
    assert loop.time() - t < 2
    await client.close()
    server.close()


def self_signed(tmp_path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    cert_pem = tmp_path / "cert.pem"
    key_pem = tmp_path / "key.pem"
    cert_pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_pem.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert_pem, key_pem)
    client_ctx = ssl.create_default_context(cafile=str(cert_pem))
    return server_ctx, client_ctx


async def test_tls_is_verified(tmp_path):
    server_ctx, client_ctx = self_signed(tmp_path)
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\n{\"errcode\":0}"
    server, port, seen = await raw_server([ok, ok, ok], ssl_ctx=server_ctx)
    url = URL(f"https://127.0.0.1:{port}/cgi-bin/message/send")
    trusting = KeepAliveClient(ssl_context=client_ctx)
    for _ in range(2):
        assert (await trusting.request("POST", url, b"{}", "application/json", 5)).body == b'{"errcode":0}'
    assert seen["connections"] == 1
    await trusting.close()
    with pytest.raises(HttpError, match="SSL"):  # the default context does not know this certificate
        await KeepAliveClient().request("POST", url, b"{}", "application/json", 5)
    server.close()
