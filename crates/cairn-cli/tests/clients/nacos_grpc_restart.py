"""A nacos-sdk-python 2.x (gRPC) listener that must survive its node's restart.

Usage: nacos_grpc_restart.py HOST:PORT GRPC_PORT USERNAME PASSWORD WORKDIR SIGNAL_FILE
Prints "listening" once its listener is registered; after SIGNAL_FILE appears (the node
was restarted and the config changed), prints "heard" once the listener has the change.
"""
import asyncio
import os
import sys

from v2.nacos import ClientConfigBuilder, ConfigParam, GRPCConfig, NacosConfigService
from v2.nacos.utils.net_util import NetUtils

NetUtils.get_local_ip = staticmethod(lambda: "127.0.0.1")


async def main():
    server, grpc_port, username, password, work, signal = sys.argv[1:7]
    http_port = int(server.rsplit(":", 1)[1])
    svc = await NacosConfigService.create_config_service(
        ClientConfigBuilder()
        .server_address(server)
        .username(username)
        .password(password)
        .log_dir(work + "/log")
        .cache_dir(work + "/cache")
        .grpc_config(GRPCConfig(grpc_timeout=3000, port_offset=int(grpc_port) - http_port))
        .build())
    data_id, group = "restart.properties", "DEFAULT_GROUP"
    assert await svc.publish_config(ConfigParam(data_id=data_id, group=group, content="v=1"))
    changes = asyncio.Queue()

    async def on_change(tenant, grp, did, content):
        await changes.put(content)

    await svc.add_listener(data_id, group, on_change)
    await asyncio.sleep(6)
    print("listening", flush=True)
    for _ in range(600):
        if os.path.exists(signal):
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("the node was not restarted")
    while True:
        content = await asyncio.wait_for(changes.get(), 30)
        if content == "v=after-restart":
            break
    print("heard", flush=True)
    await svc.shutdown()


asyncio.run(main())
