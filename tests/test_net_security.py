"""Who may read and publish through share and bridge (issue 18, item 1): only peers that
proved they may. A private unix socket on one machine, mutual TLS between machines; plain
tcp only with --insecure.

Hostile peers are plain Zenoh (tests/support/forging_peer.py) in processes of their own, on
loopback only; another local user is a forked child that became uid 65534. Each refusal is checked
against a control that does get through with the right credentials, so a hostile peer
that reads nothing is known to be refused, not merely broken.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support.helpers import CLI, cli, producer, read_line, wait_for
from tests.support.net import Lines, ended, free_port, loopback_tcp, no_zenoh_files, open_mirror, running
from tests.support.users import NOBODY, as_root, as_user
from viewer.errors import CertificateError, InsecureNetworkError
from viewer.net import secure, tls
from viewer.net.config import NetOptions, get, zenoh_config
from viewer.stream.registry import read_record

__all__ = ["no_zenoh_files"]  # the autouse fixture, imported to run here too

ROOT = Path(__file__).resolve().parent.parent
SIZE = ["--size", "160x120", "--fps", "30"]


# -- a hostile peer ----------------------------------------------------------------------


class Peer:
    """tests/support/forging_peer.py running (as this user); ``report()`` is what it has reached."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc = proc

    def report(self) -> dict:
        self.proc.stdin.write("report\n")
        self.proc.stdin.flush()
        return json.loads(read_line(self.proc))


@contextmanager
def peer(*args: str, tls_dir: Path | None = None) -> Iterator[Peer]:
    if tls_dir is not None:
        args = (
            *args,
            "--ca",
            str(tls_dir / "ca.pem"),
            "--cert",
            str(tls_dir / "cert.pem"),
            "--key",
            str(tls_dir / "key.pem"),
        )
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "support" / "forging_peer.py"), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        line = read_line(proc)
        assert line == "ready\n", f"hostile peer: {line!r} {proc.communicate()[1]}"
        yield Peer(proc)
    finally:
        proc.stdin.close()
        try:
            proc.wait(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdout.close()
            proc.stderr.close()


def refused(p: Peer) -> None:
    report = p.report()
    assert report["peers"] == 0 and report["received"] == 0, report


@contextmanager
def process(args: list[str], ready: str, **popen) -> Iterator[Lines]:
    """Like tests.support.net.running, with Popen options (a umask)."""
    proc = subprocess.Popen([*CLI, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)
    lines = Lines(proc)
    try:
        lines.wait(ready)
        yield lines
    finally:
        ended(proc)
        lines._thread.join(5)
        proc.stdout.close()


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A folder in /tmp that another user can reach up to (the pytest tmp folders are
    private to root all the way down, which would hide a socket however it was made)."""
    folder = Path(tempfile.mkdtemp(prefix="shmview-net-", dir="/tmp"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A CA with two hosts, and another CA (a stranger's) with one."""
    base = tmp_path_factory.mktemp("tls")
    tls.init(base / "ca", ["robot"])
    tls.issue(base / "ca", base / "laptop", ["laptop"])
    tls.init(base / "stranger", ["robot"])
    return {"ca": base / "ca", "laptop": base / "laptop", "stranger": base / "stranger"}


# -- refusals at the command line ------------------------------------------------------------


@pytest.mark.parametrize(
    "command", [["share", "cam0", "--listen"], ["bridge", "--connect"], ["list", "--remote", "--connect"]]
)
def test_plain_tcp_is_refused_with_the_safe_choices_named(command):
    result = cli(*command, loopback_tcp(free_port()))
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1, result.stderr
    for choice in ("local", "unixsock-stream/PATH", "tls/HOST:PORT with --tls DIR", "--insecure"):
        assert choice in result.stderr


def test_insecure_lets_plain_tcp_through_and_says_so():
    result = cli("list", "--remote", "--connect", loopback_tcp(free_port()), "--insecure")
    assert result.returncode == 1 and "no Zenoh peer or router reached" in result.stderr
    assert "warning: --insecure: whoever reaches tcp/127.0.0.1:" in result.stderr


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--listen", "tls/127.0.0.1:7447"], "must be mutual"),
        (["--listen", "tls/127.0.0.1:7447#enable_mtls=false"], "options after ? or #"),
        (["--scout"], "--scout finds peers"),
        (["--listen", "unixsock-stream//tmp/zenoh.sock"], "not a folder of yours"),
        (["--listen", "tls/127.0.0.1:7447", "--tls", "/nonexistent"], "no such folder"),
    ],
)
def test_what_others_could_use_unchecked_is_a_usage_error(args, says):
    result = cli("share", "cam0", *args)
    assert result.returncode == 2 and says in result.stderr, result.stderr


# -- one machine: a socket only its owner can reach ------------------------------------------


def reaches(path: Path, expected: bool):
    """For as_user: connect to the socket ``path`` as that user; fail unless the outcome
    is the one expected. (The other user's process cannot run Python anew here, since the
    interpreter lives under /root, so it tries the connect() a Zenoh peer of theirs would
    need first: without it no Zenoh message can pass.)"""

    def action() -> None:
        with socket.socket(socket.AF_UNIX) as s:
            try:
                s.connect(str(path))
            except PermissionError:
                assert not expected, f"{path}: refused"
                return
        assert expected, f"{path}: another user connected"

    return action


@as_root
def test_another_user_cannot_reach_a_socket_in_a_private_folder_but_could_in_an_open_one(shared_tmp):
    """The share runs with umask 0, so Zenoh makes its socket 0777: only the folder keeps
    the other user out. Control: the same share in a 0755 folder (--insecure) is reached."""
    private, open_ = shared_tmp / "private", shared_tmp / "open"
    private.mkdir(mode=0o700)
    open_.mkdir(mode=0o755)
    share = ["share", "cam0", "--host-id", "robot", "--listen"]
    with producer("cam0", *SIZE):
        with process([*share, f"unixsock-stream/{open_ / 'z.sock'}", "--insecure"], "sharing", umask=0):
            as_user(NOBODY, reaches(open_ / "z.sock", expected=True))
        at = f"unixsock-stream/{private / 'z.sock'}"
        with (
            process([*share, at], "sharing", umask=0),
            process(["bridge", "--connect", at], "bridge:"),
            open_mirror("robot.cam0") as mirror,
        ):
            mirror.wait(10)
            assert (private / "z.sock").stat().st_mode & 0o777 == 0o777
            as_user(NOBODY, reaches(private / "z.sock", expected=False))


@as_root
def test_the_default_socket_is_in_the_users_private_registry_folder(private_registry):
    path = private_registry / secure.SOCKET_NAME
    with producer("cam0", *SIZE), running(["share", "cam0", "--listen", "local"], "sharing"):
        assert path.is_socket() and path.parent.stat().st_mode & 0o777 == 0o700
        as_user(NOBODY, reaches(path, expected=False))


def test_a_socket_folder_must_be_its_owners_alone(tmp_path, shared_tmp):
    (tmp_path / "private").mkdir(mode=0o700)
    assert secure.private_socket(tmp_path / "private" / "z.sock") == tmp_path / "private" / "z.sock"
    (tmp_path / "link").symlink_to(tmp_path / "private")  # used through its real path
    assert secure.private_socket(tmp_path / "link" / "z.sock") == tmp_path / "private" / "z.sock"
    (tmp_path / "group").mkdir(mode=0o750)
    writable = shared_tmp / "writable"  # another user could rename the private folder out
    (writable / "private").mkdir(mode=0o700, parents=True)
    writable.chmod(0o777)
    for path in (
        tmp_path / "group" / "z.sock",
        writable / "private" / "z.sock",
        tmp_path / "none" / "z.sock",
        tmp_path / "private" / ("x" * 120),
    ):
        with pytest.raises(InsecureNetworkError):
            secure.private_socket(path)


@as_root
def test_a_socket_folder_of_another_user_is_refused(shared_tmp):
    folder = shared_tmp / "theirs"
    folder.mkdir(mode=0o700)
    os.chown(folder, NOBODY, NOBODY)
    result = cli("bridge", "--connect", f"unixsock-stream/{folder / 'z.sock'}")
    assert result.returncode == 2 and "not a folder of yours" in result.stderr


# -- between machines: mutual TLS ------------------------------------------------------------


def test_only_peers_with_a_certificate_from_the_ca_read(certs):
    at = f"tls/127.0.0.1:{free_port()}"
    with (
        producer("cam0", *SIZE),
        running(["share", "cam0", "--listen", at, "--tls", str(certs["ca"]), "--host-id", "robot"], "sharing"),
        peer("--connect", at, tls_dir=certs["stranger"]) as stranger,
        peer("--connect", at, "--ca", str(certs["ca"] / "ca.pem")) as no_certificate,
        peer("--connect", at.replace("tls/", "tcp/")) as plain,
        peer(
            "--connect",
            at,
            "--ca",
            str(certs["ca"] / "ca.pem"),
            "--cert",
            str(certs["stranger"] / "cert.pem"),
            "--key",
            str(certs["stranger"] / "key.pem"),
        ) as forged,
        peer("--connect", at, tls_dir=certs["laptop"]) as laptop,
    ):
        wait_for(lambda: laptop.report()["received"] > 10, what="the control: the laptop reads")
        for p in (stranger, no_certificate, plain, forged):
            refused(p)


def test_only_peers_with_a_certificate_from_the_ca_publish_into_the_mirrors(certs):
    at = f"tls/127.0.0.1:{free_port()}"
    with (
        running(["bridge", "--listen", at, "--tls", str(certs["ca"])], "bridge:"),
        peer("--connect", at, "--publish", "shmview/evil/cam0", tls_dir=certs["stranger"]) as stranger,
        peer("--connect", at, "--publish", "shmview/friend/cam0", tls_dir=certs["laptop"]),
        producer("cam0", *SIZE),
        running(["share", "cam0", "--connect", at, "--tls", str(certs["laptop"]), "--host-id", "robot"], "sharing"),
        open_mirror("robot.cam0") as mirror,
        open_mirror("friend.cam0") as friend,
    ):
        mirror.wait(10)
        assert friend.wait(10).meta["forged"] is True  # the control: a CA holder publishes
        assert stranger.report()["sent"] > 10 and stranger.report()["peers"] == 0
        assert read_record("evil.cam0") is None


def test_tls_settings_are_mutual_with_names_checked_and_only_tls_links(certs):
    conf = zenoh_config(NetOptions(listen=["tls/127.0.0.1:7447"], tls_dir=certs["laptop"]))
    settings = get(conf, "transport/link/tls")
    assert settings["enable_mtls"] is True and settings["verify_name_on_connect"] is True
    assert settings["root_ca_certificate"] == str(certs["laptop"].resolve() / "ca.pem")
    assert get(conf, "transport/link/protocols") == ["tls"]
    assert get(zenoh_config(NetOptions(connect=["local"])), "transport/link/protocols") == ["unixsock-stream"]
    assert get(zenoh_config(NetOptions(connect=["tcp/127.0.0.1:1"], insecure=True)), "transport/link/protocols") is None


# -- shmview tls -------------------------------------------------------------------------------


def test_tls_init_and_issue_make_private_folders_and_keep_the_ca_key_home(tmp_path):
    from cryptography import x509

    ca, laptop = tmp_path / "ca", tmp_path / "laptop"
    assert cli("tls", "init", str(ca), "--host", "robot.local").returncode == 0
    assert cli("tls", "issue", "--ca", str(ca), str(laptop), "--host", "10.0.0.2").returncode == 0
    assert sorted(p.name for p in ca.iterdir()) == ["ca-key.pem", "ca.pem", "cert.pem", "key.pem"]
    assert sorted(p.name for p in laptop.iterdir()) == ["ca.pem", "cert.pem", "key.pem"]
    for folder in (ca, laptop):
        assert folder.stat().st_mode & 0o777 == 0o700
    for key in (ca / "ca-key.pem", ca / "key.pem", laptop / "key.pem"):
        assert key.stat().st_mode & 0o777 == 0o600
    cert = x509.load_pem_x509_certificate((laptop / "cert.pem").read_bytes())
    cert.verify_directly_issued_by(x509.load_pem_x509_certificate((ca / "ca.pem").read_bytes()))
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(n.value) for n in names] == ["10.0.0.2", "localhost", "127.0.0.1"]


def test_tls_init_never_overwrites(tmp_path):
    assert cli("tls", "init", str(tmp_path / "ca")).returncode == 0
    before = (tmp_path / "ca" / "ca-key.pem").read_bytes()
    again = cli("tls", "init", str(tmp_path / "ca"))
    assert again.returncode == 1 and "not overwriting" in again.stderr
    assert (tmp_path / "ca" / "ca-key.pem").read_bytes() == before


def test_a_tls_folder_with_a_readable_key_or_a_strangers_certificate_is_refused(certs, tmp_path):
    loose = tmp_path / "loose"
    tls.issue(certs["ca"], loose, ["laptop"])
    (loose / "key.pem").chmod(0o644)
    mixed = tmp_path / "mixed"
    tls.issue(certs["ca"], mixed, ["laptop"])
    (mixed / "ca.pem").write_bytes((certs["stranger"] / "ca.pem").read_bytes())
    for folder, says in ((loose, "chmod 600"), (mixed, "is not signed by the CA")):
        with pytest.raises(CertificateError, match=says):
            zenoh_config(NetOptions(connect=["tls/127.0.0.1:1"], tls_dir=folder))
        result = cli("bridge", "--connect", "tls/127.0.0.1:1", "--tls", str(folder))
        assert result.returncode == 2 and says in result.stderr
