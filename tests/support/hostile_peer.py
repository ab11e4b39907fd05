"""A hostile Zenoh peer for tests/test_net_hostile.py: plain zenoh, no shmview code.

    python tests/support/hostile_peer.py ENDPOINT

connects to ENDPOINT (loopback only, multicast scouting off, listening nowhere), prints
``ready``, then runs one command per line of stdin (a JSON object) and prints ``ok``
after each:

    {"token": KEY}                      declare a liveliness token on KEY (kept)
    {"untoken": KEY}                    undeclare it
    {"tokens": PREFIX, "count": N}      declare N tokens PREFIX0 .. PREFIX<N-1> (kept)
    {"churn": KEY, "count": N}          declare and undeclare a token on KEY, N times
    {"put": KEY, "header": TEXT, "payload": FILE}   one message; "header_hex" instead of
                                        "header" for bytes, null for none; "payload_hex"
                                        instead of "payload" for a few bytes
"""

import json
import sys

import zenoh


def session(endpoint: str) -> zenoh.Session:
    conf = zenoh.Config()
    for key, value in (
        ("mode", "peer"),
        ("connect/endpoints", [endpoint]),
        ("listen/endpoints", []),
        ("scouting/multicast/enabled", False),
        ("transport/shared_memory/enabled", False),
    ):
        conf.insert_json5(key, json.dumps(value))
    return zenoh.open(conf)


def attachment(cmd: dict) -> bytes | None:
    if cmd.get("header_hex") is not None:
        return bytes.fromhex(cmd["header_hex"])
    return None if cmd.get("header") is None else cmd["header"].encode()


def payload(cmd: dict) -> bytes:
    if "payload_hex" in cmd:
        return bytes.fromhex(cmd["payload_hex"])
    with open(cmd["payload"], "rb") as f:
        return f.read()


def run(s: zenoh.Session, cmd: dict, tokens: dict) -> None:
    if "token" in cmd:
        tokens[cmd["token"]] = s.liveliness().declare_token(cmd["token"])
    elif "untoken" in cmd:
        tokens.pop(cmd["untoken"]).undeclare()
    elif "tokens" in cmd:
        for i in range(cmd["count"]):
            key = f"{cmd['tokens']}{i}"
            tokens[key] = s.liveliness().declare_token(key)
    elif "churn" in cmd:
        for _ in range(cmd["count"]):
            s.liveliness().declare_token(cmd["churn"]).undeclare()
    elif "put" in cmd:
        s.put(cmd["put"], payload(cmd), attachment=attachment(cmd))


def main() -> None:
    s, tokens = session(sys.argv[1]), {}
    print("ready", flush=True)
    try:
        for line in sys.stdin:
            run(s, json.loads(line), tokens)
            print("ok", flush=True)
    finally:
        for token in tokens.values():
            token.undeclare()
        s.close()


if __name__ == "__main__":
    main()
