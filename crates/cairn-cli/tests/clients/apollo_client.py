"""Drives Cairn with a real, unmodified Apollo client from PyPI (apollocfg).

Usage: apollo_client.py BASE_URL APP_ID SECRET TOKEN
BASE_URL is the node's URL, used as the Apollo meta server; TOKEN is a Cairn access
token used to publish through Cairn's native API. Prints one line per step.
"""
import json
import sys
import threading
import time
import urllib.error
import urllib.request

from apollocfg import ApolloClient


def native(base, token, method, path, body=None):
    request = urllib.request.Request(
        base + path,
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"},
    )
    urllib.request.urlopen(request).read()


def publish(base, token, app, data_id, content):
    native(base, token, "PUT", "/api/v1/configs/public/%s/%s" % (app, data_id),
           {"content": content})


def main():
    base, app, secret, token = sys.argv[1:5]
    client = ApolloClient(app_id=app, meta_server=base, cluster="default",
                          namespaces=["application", "app.yaml"], access_key_secret=secret,
                          client_ip="127.0.0.1", allow_fallback=False, poll_interval=0.1)
    changes, changed = [], threading.Event()

    @client.register_callback
    def on_change(namespace, diff):
        changes.append((time.monotonic(), namespace, diff))
        changed.set()

    client.start()
    assert client.get_value("greeting") == "hello", client.get_configs("application")
    assert client.get_content("app.yaml") == "server:\n  port: 8080\n", client.get_content("app.yaml")
    print("read")

    time.sleep(1.0)  # the long poll is held by now
    published_at = time.monotonic()
    publish(base, token, app, "app.yaml", "server:\n  port: 9090\n")
    assert changed.wait(10), "no change callback"
    at, namespace, _ = changes[-1]
    assert namespace == "app.yaml", namespace
    assert client.get_content("app.yaml") == "server:\n  port: 9090\n"
    latency = at - published_at
    assert latency < 2.0, "change arrived after %.3f s" % latency
    print("watched %.3f" % latency)

    # A gray release for this client's IP reaches it, and its end takes it back.
    gray = "/api/v1/configs/public/%s/application/gray" % app
    changed.clear()
    native(base, token, "PUT", gray, {"content": "greeting=canary\n", "ips": ["127.0.0.1"]})
    assert changed.wait(10), "not told of the gray release"
    assert client.get_value("greeting") == "canary", client.get_configs("application")
    changed.clear()
    native(base, token, "DELETE", gray)
    assert changed.wait(10), "not told of the gray release's end"
    assert client.get_value("greeting") == "hello", client.get_configs("application")
    print("gray")

    try:
        urllib.request.urlopen("%s/configs/%s/default/application" % (base, app))
        raise AssertionError("an unsigned read was answered")
    except urllib.error.HTTPError as e:
        assert e.code == 401, e.code
    print("refused")
    client.stop()


if __name__ == "__main__":
    main()
