#!/usr/bin/env python3
"""tests/support/relay.py LISTEN_PORT TARGET_PORT ATTACK - a man in the middle for ember links.

Accepts connections on 127.0.0.1:LISTEN_PORT and relays each to 127.0.0.1:TARGET_PORT,
passing the handshake (HELLO, CHALLENGE, PROOF, WELCOME) through untouched. On the first
connection it then attacks the server-to-client direction once, after the first frame that
follows WELCOME:
  inject  a cleartext RPC frame (a launch_executor naming a driver the relay chose)
  badid:FIELD=VALUE  the same launch_executor with FIELD (app or exec) set to VALUE, an id
          a path could be made of ("." / ".." / "a/b"): for a crypto-off worker to refuse
  flip    one bit of the next frame's ciphertext
  replay  the previous frame again
  drop    the next frame is not forwarded
  head    one bit of the link-sealed head of the first PRESEALED frame over 4 KiB (type
          19: a broadcast piece sealed once for every executor, net.h)
  tail    one bit deep in that frame's tail (the piece sealed under its value's key)
  none    nothing (a control)
It prints "attacked" once it did, and "client closed" when the client side of that first
connection closes. Later connections are relayed untouched. The relay holds no secret: what
it can do is what any host on the network path can do. Runs until killed."""
import json
import socket
import struct
import sys
import threading

listen_port, target_port, attack = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
HDR = 9
first = [True]
lock = threading.Lock()


def say(msg):
    print(msg, flush=True)


def read_frame(sock, buf):
    """One whole frame (header + body) from sock, with buf holding bytes already read."""
    while len(buf) < HDR:
        d = sock.recv(65536)
        if not d:
            return None
        buf += d
    n = struct.unpack("<I", bytes(buf[4:8]))[0]
    while len(buf) < 8 + n:
        d = sock.recv(65536)
        if not d:
            return None
        buf += d
    f = bytes(buf[:8 + n])
    del buf[:8 + n]
    return f


def frame(t, payload):
    return b"EMFR" + struct.pack("<I", len(payload) + 1) + bytes([t]) + payload


def server_to_client(srv, cli, attacking):
    buf = bytearray()
    nframes, prev, done = 0, None, not attacking
    try:
        while True:
            f = read_frame(srv, buf)
            if f is None:
                break
            nframes += 1
            out = [f]
            # frames 1 and 2 are CHALLENGE and WELCOME; frame 3 is the first sealed one
            if not done and attack in ("head", "tail") and nframes > 2 and f[8] == 19 and \
                    len(f) > 4096:
                g = bytearray(f)
                g[HDR + 4 if attack == "head" else len(g) - 100] ^= 1
                done = True
                say("attacked")   # first: the peer may close while this is sent
                cli.sendall(bytes(g))
                continue
            if not done and nframes == 4 and attack not in ("head", "tail"):
                if attack == "inject" or attack.startswith("badid:"):
                    msg = {"t": "launch_executor", "app": "app-evil", "exec": "exec-evil",
                           "driver": "127.0.0.1:1", "cores": 1, "memory": 1 << 26,
                           "secret": "relay-chosen-secret-0123456789"}
                    if attack.startswith("badid:"):
                        key, value = attack[len("badid:"):].split("=", 1)
                        msg[key] = value
                    out = [frame(16, json.dumps(msg).encode()), f]
                elif attack == "flip":
                    g = bytearray(f)
                    g[HDR] ^= 1
                    out = [bytes(g)]
                elif attack == "replay":
                    out = [prev, f]
                elif attack == "drop":
                    out = []
                done = True
                cli.sendall(b"".join(out))
                say("attacked")
                continue
            cli.sendall(b"".join(out))
            prev = f
    except OSError:
        pass
    for s in (cli, srv):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def client_to_server(cli, srv, attacking):
    try:
        while True:
            d = cli.recv(65536)
            if not d:
                break
            srv.sendall(d)
    except OSError:
        pass
    if attacking:
        say("client closed")
    for s in (cli, srv):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def main():
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", listen_port))
    ls.listen(16)
    say("listening")
    while True:
        cli, _ = ls.accept()
        srv = socket.create_connection(("127.0.0.1", target_port))
        with lock:
            attacking = first[0] and attack != "none"
            first[0] = False
        threading.Thread(target=server_to_client, args=(srv, cli, attacking), daemon=True).start()
        threading.Thread(target=client_to_server, args=(cli, srv, attacking), daemon=True).start()


main()
