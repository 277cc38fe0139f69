"""Drives Cairn with the real, unmodified nacos-sdk-python client (HTTP API).

Usage: nacos_client.py HOST:PORT USERNAME PASSWORD WORKDIR
Prints one line per step; exits non-zero on the first failure.
"""
import json
import sys
import threading
import time
import urllib.request

from nacos import NacosClient
from nacos.exception import NacosException


def main():
    server, username, password, work = sys.argv[1:5]
    client = NacosClient(server, namespace="", username=username, password=password,
                         logDir=work + "/log")
    client.set_options(snapshot_base=work + "/snapshot", failover_base=work + "/failover",
                       pulling_timeout=5)
    data_id, group = "nacos-client.properties", "DEFAULT_GROUP"

    assert client.publish_config(data_id, group, "greeting=hello") is True
    print("published")
    assert client.get_config(data_id, group, no_snapshot=True) == "greeting=hello"
    print("read")

    changes, changed = [], threading.Event()

    def on_change(event):
        changes.append((time.monotonic(), event["content"]))
        changed.set()

    client.add_config_watcher(data_id, group, on_change)
    time.sleep(1.5)  # let the listener settle into a held long poll
    published_at = time.monotonic()
    assert client.publish_config(data_id, group, "greeting=bonjour") is True
    assert changed.wait(10), "no change callback"
    at, content = changes[-1]
    assert content == "greeting=bonjour", content
    latency = at - published_at
    assert latency < 1.0, "change arrived after %.3f s" % latency
    print("watched %.3f" % latency)

    url = "http://%s/nacos/v1/cs/history?search=accurate&dataId=%s&group=%s&accessToken=%s" % (
        server, data_id, group, client.token)
    page = json.load(urllib.request.urlopen(url))
    assert page["totalCount"] == 2, page
    assert [item["opType"] for item in page["pageItems"]] == ["U", "I"], page
    print("history")

    changed.clear()
    assert client.remove_config(data_id, group) is True
    assert changed.wait(10), "no callback for the deletion"
    assert changes[-1][1] is None, changes[-1]
    assert client.get_config(data_id, group, no_snapshot=True) is None
    print("deleted")

    anonymous = NacosClient(server, namespace="", logDir=work + "/log-anonymous")
    anonymous.set_options(snapshot_base=work + "/snapshot-anonymous",
                          failover_base=work + "/failover-anonymous")
    try:
        anonymous.get_config(data_id, group, no_snapshot=True)
        raise AssertionError("an anonymous read was answered")
    except NacosException as e:
        assert "403" in str(e) or "privilege" in str(e).lower() or "Forbidden" in str(e), e
    print("refused")


if __name__ == "__main__":
    import multiprocessing
    import os
    try:
        main()
        code = 0
    except BaseException:
        import traceback
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    # The client's pulling threads and multiprocessing manager do not stop on their own.
    for child in multiprocessing.active_children():
        child.terminate()
    os._exit(code)
