"""A forging Zenoh peer, as another user or machine might run one against shmview: it
connects to an endpoint (with whatever TLS files it holds), subscribes to every shmview
key, and with --publish declares a liveliness token on a key and publishes well-formed
frames there, as a forged robot would.

It prints ``ready`` once its session is open; then each line ``report`` on its stdin is
answered with one JSON line: {"peers": N, "received": N, "sent": N}. It ends at EOF.
Scouting is off and the only endpoint is the one given: nothing goes anywhere else.

    python tests/support/forging_peer.py --connect tls/127.0.0.1:7447 [--ca F --cert F --key F] [--publish KEY]
"""

from __future__ import annotations

import argparse
import json
import select
import sys
import time

import numpy as np
import zenoh

from viewer.net.codec import Header, encode

TLS_KEYS = {"ca": "root_ca_certificate", "cert": "connect_certificate", "key": "connect_private_key"}


def config(args: argparse.Namespace) -> zenoh.Config:
    conf = zenoh.Config()
    for key, value in (
        ("connect/endpoints", [args.connect]),
        ("listen/endpoints", []),
        ("scouting/multicast/enabled", False),
        ("transport/shared_memory/enabled", False),
    ):
        conf.insert_json5(key, json.dumps(value))
    for name, key in TLS_KEYS.items():
        if getattr(args, name):
            conf.insert_json5(f"transport/link/tls/{key}", json.dumps(getattr(args, name)))
    if args.cert:  # a client certificate is sent only with mTLS on at this end too
        conf.insert_json5("transport/link/tls/enable_mtls", "true")
    return conf


def forged_frame(index: int) -> tuple[bytes, bytes]:
    image = np.full((48, 64, 3), 200, np.uint8)
    head = Header(index, time.time_ns(), image.shape, "uint8", "BGR", "raw", {"forged": True})
    return encode(image, "raw"), head.pack()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--connect", required=True)
    p.add_argument("--ca")
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--publish", metavar="KEY")
    args = p.parse_args()
    session = zenoh.open(config(args))
    sub = session.declare_subscriber("shmview/**", zenoh.handlers.FifoChannel(64))
    token = session.liveliness().declare_token(args.publish) if args.publish else None
    received = sent = 0
    print("ready", flush=True)
    while True:
        while (sample := sub.handler.try_recv()) is not None:
            received += str(sample.key_expr) != args.publish  # not its own frames
        if args.publish:
            payload, head = forged_frame(sent)
            session.put(args.publish, payload, attachment=head, allowed_destination=zenoh.Locality.REMOTE)
            sent += 1
        ready, _, _ = select.select([sys.stdin], [], [], 0.05)  # a pace for the forged frames
        if ready:
            line = sys.stdin.readline()
            if not line:
                break
            peers = len(list(session.info.peers_zid())) + len(list(session.info.routers_zid()))
            print(json.dumps({"peers": peers, "received": received, "sent": sent}), flush=True)
    if token is not None:
        token.undeclare()
    sub.undeclare()
    session.close()


if __name__ == "__main__":
    main()
