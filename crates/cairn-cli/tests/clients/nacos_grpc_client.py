"""Drives Cairn with the real, unmodified nacos-sdk-python 2.x gRPC client (`v2.nacos`).

Usage: nacos_grpc_client.py HOST:PORT GRPC_PORT USERNAME PASSWORD WORKDIR
Prints one line per step; exits non-zero on the first failure.
"""
import asyncio
import hashlib
import json
import sys
import time
import urllib.parse
import urllib.request

from v2.nacos import ClientConfigBuilder, ConfigParam, GRPCConfig, NacosConfigService, NacosException
from v2.nacos.utils.net_util import NetUtils

# The client states its first non-loopback IPv4 as its IP; a test machine may have
# none. Gray releases by IP then target this one.
NetUtils.get_local_ip = staticmethod(lambda: "127.0.0.1")


def md5(text):
    return hashlib.md5(text.encode("utf-8")).hexdigest()


def config(server, grpc_port, username, password, work):
    http_port = int(server.rsplit(":", 1)[1])
    return (ClientConfigBuilder()
            .server_address(server)
            .namespace_id("")
            .username(username)
            .password(password)
            .log_dir(work + "/log")
            .cache_dir(work + "/cache")
            .grpc_config(GRPCConfig(grpc_timeout=3000, port_offset=grpc_port - http_port))
            .build())


def http_publish(server, token, data_id, group, content):
    """A publish through Nacos's HTTP API, as another application would make it."""
    body = urllib.parse.urlencode({"dataId": data_id, "group": group, "content": content,
                                   "accessToken": token}).encode()
    with urllib.request.urlopen("http://%s/nacos/v1/cs/configs" % server, body) as r:
        assert r.read() == b"true"


async def main():
    server, grpc_port, username, password, work = sys.argv[1:6]
    grpc_port = int(grpc_port)
    svc = await NacosConfigService.create_config_service(
        config(server, grpc_port, username, password, work))
    data_id, group = "grpc-client.properties", "DEFAULT_GROUP"
    param = lambda **kw: ConfigParam(data_id=data_id, group=group, **kw)

    assert await svc.get_config(param()) == ""
    assert await svc.publish_config(param(content="greeting=hello", type="properties"))
    assert await svc.get_config(param()) == "greeting=hello"
    print("published")

    assert await svc.publish_config(param(content="greeting=hi", cas_md5=md5("greeting=hello")))
    try:
        await svc.publish_config(param(content="greeting=lost", cas_md5=md5("stale")))
        raise AssertionError("a publish over a stale md5 succeeded")
    except NacosException as e:
        assert "Cas publish fail" in str(e.message), e.message
    assert await svc.get_config(param()) == "greeting=hi"
    print("cas")

    changes = asyncio.Queue()

    async def on_change(tenant, grp, did, content):
        await changes.put((time.monotonic(), content))

    await svc.add_listener(data_id, group, on_change)
    # The client registers new listeners with its next listen round (every 5 s).
    await asyncio.sleep(6)
    while not changes.empty():
        changes.get_nowait()

    published_at = time.monotonic()
    assert await svc.publish_config(param(content="greeting=bonjour"))
    at, content = await asyncio.wait_for(changes.get(), 10)
    assert content == "greeting=bonjour", content
    print("pushed-grpc %.3f" % (at - published_at))

    # A publish over HTTP (another surface) reaches the same listener.
    login = urllib.request.urlopen(urllib.request.Request(
        "http://%s/nacos/v1/auth/login?%s" % (
            server, urllib.parse.urlencode({"username": username, "password": password})),
        data=b""))
    token = json.load(login)["accessToken"]
    published_at = time.monotonic()
    http_publish(server, token, data_id, group, "greeting=hallo")
    at, content = await asyncio.wait_for(changes.get(), 10)
    assert content == "greeting=hallo", content
    print("pushed-http %.3f" % (at - published_at))

    # A beta release to this client's IP: it reads the beta content, others do not.
    assert await svc.publish_config(param(content="greeting=beta", beta_ips="127.0.0.1"))
    assert await svc.get_config(param()) == "greeting=beta"
    # Another client (here one stating another IP, through the native API) still reads
    # the main content.
    other = urllib.request.urlopen(urllib.request.Request(
        "http://%s/api/v1/configs/public/%s/%s" % (server, group, data_id),
        headers={"Authorization": "Bearer " + token, "x-cairn-client-ip": "10.1.2.3"}))
    assert other.read() == b"greeting=hallo"
    print("beta")

    assert await svc.remove_config(param())
    assert await svc.get_config(param()) == ""
    print("removed")
    await svc.shutdown()

    # Wrong credentials: the client cannot log in, and the server refuses its requests.
    refused = await NacosConfigService.create_config_service(
        config(server, grpc_port, username, "not-the-password", work + "/wrong"))
    try:
        await refused.get_config(param())
        raise AssertionError("a client with a wrong password read a config")
    except NacosException as e:
        # The client fails its login first, so it sends no request at all.
        assert e.error_code == 403 or "access token" in str(e.message), e
    finally:
        await refused.shutdown()
    print("refused")


asyncio.run(main())
