#!/usr/bin/env python3
"""Sends refused requests to a running `wgbert serve` the way ordinary clients do, writing
the whole body before reading the answer, and prints what each got as one JSON object:
{"http.client": [...], "requests": [...], "httpx": [...]}, each entry a status code or the
name of the exception the client raised (a reset, a broken pipe).

    refusals.py BASE_URL PATH BYTES COUNT [AUTHORIZATION]

BYTES: the body's size (a JSON text padded with spaces); COUNT: requests per client.
"""
import http.client
import json
import sys
import urllib.parse

import httpx
import requests


def body(size: int) -> bytes:
    head = b'{"inputs": "w5 w6"}'
    return head + b" " * max(0, size - len(head))


def main() -> None:
    base, path, size, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    auth = sys.argv[5] if len(sys.argv) > 5 else None
    url = base + path
    data = body(size)
    headers = {"Content-Type": "application/json"}
    if auth:
        headers["Authorization"] = auth
    out = {"http.client": [], "requests": [], "httpx": []}
    parts = urllib.parse.urlsplit(base)
    for _ in range(count):
        try:
            c = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
            c.request("POST", path, body=data, headers=headers)
            out["http.client"].append(c.getresponse().status)
            c.close()
        except Exception as e:  # noqa: BLE001 - the kind of failure is the result
            out["http.client"].append(type(e).__name__)
        try:
            out["requests"].append(requests.post(url, data=data, headers=headers, timeout=30).status_code)
        except Exception as e:  # noqa: BLE001
            out["requests"].append(type(e).__name__)
        try:
            out["httpx"].append(httpx.post(url, content=data, headers=headers, timeout=30).status_code)
        except Exception as e:  # noqa: BLE001
            out["httpx"].append(type(e).__name__)
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
