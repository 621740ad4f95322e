"""Makes an MCP server look like one of the 2025 protocol: stands between client and server on stdio and
refuses `server/discover` itself, so the SDK's client falls back to the initialize handshake.

Usage: python mcp_legacy_proxy.py SERVER-COMMAND...
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading


def main() -> None:
    server = subprocess.Popen(sys.argv[1:], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
    assert server.stdin is not None and server.stdout is not None
    out_lock = threading.Lock()

    def write(line: str) -> None:
        with out_lock:
            sys.stdout.write(line if line.endswith("\n") else line + "\n")
            sys.stdout.flush()

    def relay_answers() -> None:
        assert server.stdout is not None
        for line in server.stdout:
            write(line)

    threading.Thread(target=relay_answers, daemon=True).start()
    for line in sys.stdin:
        message = json.loads(line)
        if message.get("method") == "server/discover":
            write(json.dumps({"jsonrpc": "2.0", "id": message["id"],
                              "error": {"code": -32601, "message": "Method not found"}}))
            continue
        server.stdin.write(line)
        server.stdin.flush()
    server.stdin.close()
    sys.exit(server.wait())


if __name__ == "__main__":
    main()
