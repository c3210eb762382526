"""A TCP proxy on 127.0.0.1 for network-fault tests: forwards to a server until told to stall.

``stall()`` makes it a hung middlebox: every socket stays open (the kernel keeps acknowledging,
so TCP keepalives and ``tcp_user_timeout`` see nothing wrong), new connections are accepted,
and not one byte more is forwarded either way.  ``resume()`` forwards again (bytes held back
are lost, as in a real hang).  Threads, one pair per connection; ``close()`` ends them all.
"""

from __future__ import annotations

import select
import socket
import threading
import time


class FaultProxy:
    def __init__(self, target_host: str, target_port: int):
        self.target = (target_host, target_port)
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(128)
        self.port = self.listener.getsockname()[1]
        self.stalled = threading.Event()
        self.stalled_at: float | None = None
        self.closed = threading.Event()
        self.sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, name="proxy-accept", daemon=True).start()

    @property
    def label(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stall(self) -> float:
        """Stop forwarding (sockets stay open); returns the monotonic time of the stall."""
        self.stalled_at = time.monotonic()
        self.stalled.set()
        return self.stalled_at

    def resume(self) -> None:
        self.stalled.clear()

    def close(self) -> None:
        self.closed.set()
        self.listener.close()
        with self._lock:
            for sock in self.sockets:
                try:
                    sock.close()
                except OSError:
                    pass

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- threads ----
    def _accept(self) -> None:
        while not self.closed.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            with self._lock:
                self.sockets.append(client)
            if self.stalled.is_set():
                continue  # a hung middlebox: the connection is accepted and nothing happens
            try:
                server = socket.create_connection(self.target, timeout=10)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self._lock:
                self.sockets.append(server)
            threading.Thread(target=self._pump, args=(client, server), name="proxy-pump", daemon=True).start()

    def _pump(self, client: socket.socket, server: socket.socket) -> None:
        peers = {client: server, server: client}
        while not self.closed.is_set():
            if self.stalled.is_set():
                time.sleep(0.05)  # hold everything: read nothing, so nothing is forwarded
                continue
            try:
                ready, _, _ = select.select(list(peers), [], [], 0.05)
            except (OSError, ValueError):
                return
            for sock in ready:
                if self.stalled.is_set():
                    break
                try:
                    data = sock.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    for end in peers:
                        try:
                            end.close()
                        except OSError:
                            pass
                    return
                try:
                    peers[sock].sendall(data)
                except OSError:
                    return
