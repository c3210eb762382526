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
        self._held: list[threading.Event] = []  # one per forwarded connection: set = hold its bytes
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, name="proxy-accept", daemon=True).start()

    @property
    def label(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stall(self, *, new_connections: bool = True) -> float:
        """Stop forwarding (sockets stay open); returns the monotonic time of the stall.

        ``new_connections=False``: only the connections open now hang (a NAT or pooler that lost
        their flows); connections made afterwards are forwarded.
        """
        self.stalled_at = time.monotonic()
        with self._lock:
            for held in self._held:
                held.set()
        if new_connections:
            self.stalled.set()
        return self.stalled_at

    def resume(self) -> None:
        self.stalled.clear()
        with self._lock:
            for held in self._held:
                held.clear()

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
            held = threading.Event()
            with self._lock:
                self._held.append(held)
            threading.Thread(target=self._pump, args=(client, server, held), name="proxy-pump", daemon=True).start()

    def _pump(self, client: socket.socket, server: socket.socket, held: threading.Event) -> None:
        peers = {client: server, server: client}
        while not self.closed.is_set():
            if held.is_set():
                time.sleep(0.05)  # hold everything: read nothing, so nothing is forwarded
                continue
            try:
                ready, _, _ = select.select(list(peers), [], [], 0.05)
            except (OSError, ValueError):
                return
            for sock in ready:
                if held.is_set():
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


def send_signals(proc, signals, gap_s: float = 0.5) -> float:
    """Send each of ``signals`` to ``proc``, ``gap_s`` apart (Ctrl-C twice is two SIGINTs, as a person types
    them, not one burst); the monotonic time of the first.  The tests and bench/faults.py time a signal
    during a stall from it."""
    first = time.monotonic()
    for number, signum in enumerate(signals):
        if number:
            time.sleep(gap_s)
        proc.send_signal(signum)
    return first
