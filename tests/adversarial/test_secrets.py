"""Secrets under pressure: verbose runs, chatty servers, broken password commands, cron.

The password must never show up where a person, a log collector or a bug report could read
it: stdout, stderr (also at -vv), the error log, the database file, a traceback. Neither may
the forms it takes on the wire: AUTH PLAIN's base64 of ``\\0login\\0password`` and AUTH
LOGIN's base64 of the password alone, which some servers echo back in their refusals.
"""

from __future__ import annotations

import base64
import gc
import json
import logging
import os
import shlex
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path

import keyring
import pytest
from keyrings.alt.file import PlaintextKeyring

from eddymail import secrets
from eddymail.errors import MailServerError, SecretError
from eddymail.services import errorlog
from tests.mailfactory import make_mail

PASSWORD = "Vq7-hunter2-Sesame"
WRONG = "Wx4-not-the-Sesame"
LOGIN_PREFIX = "secret-user"


def forms(login: str, password: str) -> list[str]:
    """Every way the password may be written: plain and as AUTH PLAIN/LOGIN send it."""
    return [
        password,
        base64.b64encode(password.encode()).decode(),
        base64.b64encode(f"\0{login}\0{password}".encode()).decode(),
        base64.b64encode(f"{login}\0{login}\0{password}".encode()).decode(),
    ]


def assert_hidden(texts: dict[str, str | bytes], login: str, *passwords: str) -> None:
    """None of ``passwords`` (in any form) occurs in any of ``texts``."""
    for password in passwords:
        for form in forms(login, password):
            for where, text in texts.items():
                needle = form.encode() if isinstance(text, bytes) else form
                assert needle not in text, f"{form!r} (for {password!r}) found in {where}"


def database_bytes(database_path: Path) -> bytes:
    """The database file and its journals, as they lie on disk."""
    found = b""
    for suffix in ("", "-wal", "-journal", "-shm"):
        path = Path(str(database_path) + suffix)
        if path.exists():
            found += path.read_bytes()
    return found


# --- verbose runs against the real servers -------------------------------------------------


@pytest.fixture
def secret_user(dovecot, smtp_server):
    """A mailbox whose password is PASSWORD, on Dovecot and the SMTP server alike."""
    user = dovecot.create_user(f"{LOGIN_PREFIX}-{time.monotonic_ns()}", PASSWORD)
    smtp_server.add_user(user.login, PASSWORD)
    return user


@pytest.mark.parametrize("protocol", ["imap", "pop3"])
@pytest.mark.parametrize("stored", [PASSWORD, WRONG], ids=["right password", "wrong password"])
def test_debug_runs_show_no_password(eddymail, support, dovecot, smtp_server, secret_user,
                                     database_path, protocol, stored):
    port = dovecot.imap_port if protocol == "imap" else dovecot.pop3_port
    support("support", "--email", secret_user.address, "--login", secret_user.login,
            "--protocol", protocol, "--host", dovecot.host, "--port", str(port),
            "--security", "starttls", "--ca-file", str(dovecot.pki.ca_file),
            "--smtp-host", smtp_server.host, "--smtp-port", str(smtp_server.port),
            "--smtp-security", "starttls", password=stored)
    dovecot.deliver(secret_user, make_mail("Hello"))
    code = 0 if stored == PASSWORD else 3
    outputs: dict[str, str | bytes] = {}
    for args in (("channel", "test", "support"), ("fetch",), ("channel", "test", "--json"),
                 ("fetch", "--json")):
        result = eddymail("-vv", *args, code=code)
        outputs[f"{args} stdout"] = result.stdout
        outputs[f"{args} stderr"] = result.stderr
    if stored == WRONG:
        assert "Authentication failed" in outputs["('channel', 'test', 'support') stdout"]
        log = eddymail("log", "--json").stdout
        assert json.loads(log)["entries"]
        outputs["error log"] = log
    else:
        assert len(smtp_server.wait_for(2)) >= 2  # the test letters did go out
    outputs["database"] = database_bytes(database_path)
    assert_hidden(outputs, secret_user.login, PASSWORD, WRONG)


def test_unexpected_exception_traceback_shows_no_password(eddymail, support, dovecot,
                                                          secret_user, monkeypatch):
    import imaplib

    def broken_login(self, user, password):
        raise RuntimeError("the session went somewhere nobody expected")

    monkeypatch.setattr(imaplib.IMAP4, "login", broken_login)
    support("support", "--email", secret_user.address, "--login", secret_user.login,
            "--protocol", "imap", "--host", dovecot.host, "--port", str(dovecot.imaps_port),
            "--security", "ssl", "--ca-file", str(dovecot.pki.ca_file), password=PASSWORD)
    for args in (("channel", "test", "support"), ("fetch",)):
        result = eddymail("-v", *args, code=1)
        assert "Traceback" in result.stderr and "RuntimeError" in result.stderr
        assert_hidden({"stdout": result.stdout, "stderr": result.stderr}, secret_user.login,
                      PASSWORD)


def test_unexpected_exception_that_quotes_the_password_is_scrubbed(eddymail, support, dovecot,
                                                                   secret_user, monkeypatch):
    import imaplib

    def buggy_login(self, user, password):
        raise TypeError(f"login() got an unexpected argument {password!r}")  # a library bug

    monkeypatch.setattr(imaplib.IMAP4, "login", buggy_login)
    support("support", "--email", secret_user.address, "--login", secret_user.login,
            "--protocol", "imap", "--host", dovecot.host, "--port", str(dovecot.imaps_port),
            "--security", "ssl", "--ca-file", str(dovecot.pki.ca_file), password=PASSWORD)
    result = eddymail("-vv", "channel", "test", "support", code=1)
    assert "Traceback" in result.stderr
    assert_hidden({"stdout": result.stdout, "stderr": result.stderr}, secret_user.login,
                  PASSWORD)


# --- servers that echo what they were sent -------------------------------------------------


class EchoServer:
    """A TLS server on 127.0.0.1 that speaks just enough IMAP or SMTP to refuse a login,
    quoting the credentials it received in its refusal, as some servers really do."""

    def __init__(self, pki, answer: Callable[[list[str]], Iterator[str | None]]) -> None:
        self.context = pki.server_context()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.answer = answer
        self.received: list[str] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                raw, _ = self.listener.accept()
            except OSError:
                return
            try:
                with self.context.wrap_socket(raw, server_side=True) as conn:
                    conn.settimeout(5)
                    reader = conn.makefile("rb")
                    lines: list[str] = []
                    replies = self.answer(lines)
                    for reply in replies:
                        if reply is not None:
                            conn.sendall(reply.encode())
                            continue
                        line = reader.readline()
                        if not line:
                            break
                        lines.append(line.decode().rstrip("\r\n"))
                        self.received.append(lines[-1])
            except (OSError, ssl.SSLError):
                continue

    def close(self) -> None:
        self.listener.close()


def smtp_echo(mechanism: str) -> Callable[[list[str]], Iterator[str | None]]:
    def conversation(lines: list[str]) -> Iterator[str | None]:
        yield "220 localhost ESMTP echo\r\n"
        yield None  # EHLO
        yield f"250-localhost\r\n250 AUTH {mechanism}\r\n"
        while True:
            yield None
            command = lines[-1]
            if command.upper().startswith("AUTH LOGIN"):
                yield "334 UGFzc3dvcmQ6\r\n"
                yield None  # base64 of the password alone
                yield f"535 5.7.8 Password {lines[-1]} rejected for {command}\r\n"
            elif command.upper().startswith("AUTH PLAIN"):
                yield f"535 5.7.8 Credentials {command[11:]} rejected\r\n"
            elif command.upper().startswith("QUIT"):
                yield "221 bye\r\n"
                return
            else:
                yield "250 ok\r\n"

    return conversation


def imap_echo(lines: list[str]) -> Iterator[str | None]:
    yield "* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] echo ready\r\n"
    while True:
        yield None
        tag, _, rest = lines[-1].partition(" ")
        verb = rest.split(" ", 1)[0].upper()
        if verb == "CAPABILITY":
            yield f"* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n{tag} OK done\r\n"
        elif verb == "LOGIN":
            yield f"{tag} NO [AUTHENTICATIONFAILED] Invalid login {rest[6:]}\r\n"
        elif verb == "LOGOUT":
            yield f"* BYE\r\n{tag} OK bye\r\n"
            return
        else:
            yield f"{tag} BAD what is {rest}\r\n"


@pytest.mark.parametrize("kind", ["smtp PLAIN", "smtp LOGIN", "imap LOGIN"])
def test_a_server_echoing_the_credentials_is_redacted(eddymail, support, pki, database_path,
                                                       kind):
    protocol, mechanism = kind.split()
    server = EchoServer(pki, smtp_echo(mechanism) if protocol == "smtp" else imap_echo)
    try:
        connection = (["--protocol", "none", "--smtp-host", "127.0.0.1", "--smtp-port",
                       str(server.port), "--smtp-security", "ssl"] if protocol == "smtp" else
                      ["--protocol", "imap", "--host", "127.0.0.1", "--port", str(server.port),
                       "--security", "ssl"])
        support("echo", "--email", "echo@example.test", "--login", "echo-login",
                "--ca-file", str(pki.ca_file), *connection, password=PASSWORD)
        result = eddymail("-vv", "channel", "test", "echo", "--json", code=3)
        (check,) = json.loads(result.stdout)["channels"][0]["checks"]
        assert check["ok"] is False
        assert "rejected" in check["answer"] or "Invalid login" in check["answer"]
        log = eddymail("log", "--json").stdout
    finally:
        server.close()
    # The server did get (and echo) the secret; eddymail never repeats it.
    assert any(PASSWORD in line or base64.b64encode(PASSWORD.encode()).decode() in line
               or base64.b64encode(f"\0echo-login\0{PASSWORD}".encode()).decode() in line
               for line in server.received)
    assert_hidden({"stdout": result.stdout, "stderr": result.stderr, "log": log,
                   "database": database_bytes(database_path)}, "echo-login", PASSWORD)


def test_error_log_redacts_auth_plain_blobs_and_secrets_the_caller_forgot(open_database):
    plain = base64.b64encode(b"\0someone@example.test\0hunter2-long").decode()
    error = MailServerError("login failed", answer=f"535 5.7.8 {plain} rejected")
    entry = errorlog.record_failure(channel=None, operation="smtp login", error=error,
                                    secrets=["hunter2-long"])
    assert plain not in entry.answer and "[redacted]" in entry.answer
    # A password in use is scrubbed even when the caller does not name it.
    forgotten = MailServerError("x", answer="echo forgotten-Secret-9 and "
                                + base64.b64encode(b"forgotten-Secret-9").decode())
    with secrets.in_use("forgotten-Secret-9"):
        entry = errorlog.record_failure(channel=None, operation="smtp login", error=forgotten)
    assert "forgotten-Secret-9" not in entry.answer
    assert base64.b64encode(b"forgotten-Secret-9").decode() not in entry.answer
    # Ordinary words are not mistaken for base64 secrets.
    plain_text = MailServerError("x", answer="Authentication credentials invalid")
    entry = errorlog.record_failure(channel=None, operation="smtp login", error=plain_text)
    assert entry.answer == "Authentication credentials invalid"


@pytest.fixture
def open_database(database_path):
    """The test's database opened in this process (for calling services directly)."""
    from eddymail.db.connection import close_database, open_database

    open_database(f"sqlite:///{database_path}")
    try:
        yield
    finally:
        close_database()


# --- how long a password stays in this process ------------------------------------------


class Watched(str):
    """A password whose life a test can follow: a ``str`` that takes a weak reference."""


@pytest.fixture
def watched_passwords(monkeypatch) -> list[weakref.ref]:
    """A weak reference to every password read from a password command from now on."""
    watched: list[weakref.ref] = []
    read = secrets.run_password_command

    def read_and_watch(*args, **kwargs) -> str:
        password = Watched(read(*args, **kwargs))
        watched.append(weakref.ref(password))
        return password

    monkeypatch.setattr(secrets, "run_password_command", read_and_watch)
    return watched


def still_held(watched: list[weakref.ref]) -> int:
    """How many of the watched passwords something in this process still holds."""
    gc.collect()  # an exception in a reference cycle is gone only after a collection
    return sum(ref() is not None for ref in watched)


def password_channel(support, dovecot, smtp_server, user, password_file: Path) -> None:
    support("support", "--email", user.address, "--login", user.login, "--protocol", "imap",
            "--host", dovecot.host, "--port", str(dovecot.imap_port), "--security",
            "starttls", "--ca-file", str(dovecot.pki.ca_file), "--smtp-host", smtp_server.host,
            "--smtp-port", str(smtp_server.port), "--smtp-security", "starttls",
            "--password-command", f"cat {password_file}", password=None)


def test_a_password_is_dropped_once_it_has_been_used(eddymail, support, dovecot, smtp_server,
                                                    secret_user, tmp_path, watched_passwords):
    password_file = tmp_path / "pw"
    password_file.write_text(PASSWORD + "\n")
    password_channel(support, dovecot, smtp_server, secret_user, password_file)
    dovecot.deliver(secret_user, make_mail("Hello"))
    assert eddymail.json("channel", "test", "support")["channels"][0]["ok"] is True
    assert eddymail.json("fetch", "--no-notify")["channels"][0]["new_tickets"] == 1
    (ticket,) = eddymail.json("ticket", "list")["tickets"]
    assert eddymail.json("ticket", "reply", str(ticket["id"]), "-m", "Done.")["sent"] is True
    # Read for the IMAP check, the SMTP check's test letter, the fetch and the reply.
    assert len(watched_passwords) >= 4
    assert still_held(watched_passwords) == 0
    # Nothing is left to scrub either: the process does not know the password any more.
    assert secrets.scrub(f"said {PASSWORD}") == f"said {PASSWORD}"


@pytest.mark.parametrize("failure", ["wrong password", "a library bug quoting it"])
def test_a_password_in_a_failure_is_dropped_once_the_failure_is_reported(
        eddymail, support, dovecot, smtp_server, secret_user, tmp_path, watched_passwords,
        monkeypatch, failure):
    password_file = tmp_path / "pw"
    password_file.write_text((WRONG if failure == "wrong password" else PASSWORD) + "\n")
    password_channel(support, dovecot, smtp_server, secret_user, password_file)
    if failure == "a library bug quoting it":
        import imaplib

        def buggy_login(self, user, password):
            raise TypeError(f"login() got an unexpected argument {password!r}")

        monkeypatch.setattr(imaplib.IMAP4, "login", buggy_login)
    code = 3 if failure == "wrong password" else 1
    outputs: dict[str, str | bytes] = {}
    for args in (("channel", "test", "support", "--no-send"), ("fetch",)):
        result = eddymail("-vv", *args, code=code)
        outputs[f"{args} stdout"], outputs[f"{args} stderr"] = result.stdout, result.stderr
    # The runner's result is the test's, not eddymail's: before click 8.5.1 it keeps the
    # exit's exception, and with it the failure it was raised in.
    del result
    outputs["log"] = eddymail("log", "--json").stdout
    assert_hidden(outputs, secret_user.login, PASSWORD, WRONG)
    assert len(watched_passwords) >= 2
    assert still_held(watched_passwords) == 0


def test_a_secret_is_scrubbed_while_in_use_and_then_only_where_its_error_goes():
    secret = "Zq9-in-use-Secret"
    encoded = base64.b64encode(f"\0login\0{secret}".encode()).decode()
    line = f"server said {secret} to {encoded}"
    assert secrets.scrub(line) == line
    with secrets.in_use(secret):
        with secrets.in_use(secret):  # the same password in use twice (a nested send)
            pass
        scrubbed = secrets.scrub(line)  # the outer use still counts
        assert secret not in scrubbed and encoded not in scrubbed
    assert secrets.scrub(line) == line
    # An error leaving the block carries the secret to whoever reports it, and no further.
    with pytest.raises(TypeError) as caught, secrets.in_use(secret):
        raise TypeError(f"bad argument {secret!r}")
    error = caught.value
    assert secrets.carried_by(error) == [secret]
    assert secrets.scrub(str(error)) == str(error)
    assert secret not in secrets.scrub(str(error), secrets.carried_by(error))
    record = logging.LogRecord("eddymail", logging.ERROR, __file__, 1, "failed: %s", (error,),
                               (TypeError, error, error.__traceback__))
    logged = secrets.ScrubbingFormatter().format(record)
    assert "Traceback" in logged and secret not in logged
    # ... also when it was wrapped in another error on the way.
    try:
        try:
            with secrets.in_use(secret):
                raise OSError(f"sent {secret}")
        except OSError as inner:
            raise RuntimeError("the session broke") from inner
    except RuntimeError as outer:
        assert secrets.carried_by(outer) == [secret]


# --- password commands --------------------------------------------------------------------


def script(tmp_path: Path, name: str, body: str) -> str:
    """A password command: ``python SCRIPT`` as one shell-like string."""
    path = tmp_path / f"{name}.py"
    path.write_text(body)
    return f"{sys.executable} {path}"


def command_channel(support, dovecot, user, command: str, name: str = "cmd"):
    return support(name, "--email", user.address, "--login", user.login,
                   "--protocol", "imap", "--host", dovecot.host,
                   "--port", str(dovecot.imaps_port), "--security", "ssl",
                   "--ca-file", str(dovecot.pki.ca_file), "--password-command", command,
                   password=None)


COMMANDS = {
    "fails": ("import sys\nsys.stderr.write('gpg: decrypted {pw}\\n')\nprint('{pw}')\n"
              "sys.exit(1)\n", "failed with exit code 1"),
    "prints nothing": ("import sys\nsys.stderr.write('no entry for {pw}\\n')\n",
                       "printed nothing"),
    "prints only a newline": ("print()\n", "printed nothing"),
}


@pytest.mark.parametrize("case", COMMANDS)
def test_a_broken_password_command_is_a_clear_error_that_hides_its_output(
        eddymail, support, dovecot, mail_user, tmp_path, database_path, case):
    body, expected = COMMANDS[case]
    command_channel(support, dovecot, mail_user, script(tmp_path, "pw", body.format(
        pw=PASSWORD)))
    result = eddymail("-vv", "channel", "test", "cmd", "--json", code=3)
    (check,) = json.loads(result.stdout)["channels"][0]["checks"]
    assert check["check"] == "password" and expected in check["answer"]
    fetched = eddymail("-vv", "fetch", "cmd", code=3)
    assert expected in fetched.stderr or expected in fetched.stdout
    log = eddymail("log", "--json").stdout
    assert expected in log
    assert_hidden({"stdout": result.stdout + fetched.stdout,
                   "stderr": result.stderr + fetched.stderr, "log": log,
                   "database": database_bytes(database_path)}, mail_user.login, PASSWORD)


def running_sleeper(pid: int) -> bool:
    """Whether ``pid`` is still our ``sleep`` and alive (a zombie is dead; a reused PID is
    not ours)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z" and command.startswith(b"sleep\0")


def test_a_hanging_password_command_times_out_with_everything_it_started(
        eddymail, support, dovecot, mail_user, monkeypatch, tmp_path):
    # The shell waits for its child: killing only the shell would leave "sleep" holding the
    # pipe. The child writes down its PID, so the test sees it stopped too (rather than
    # timing the run). A command left running would print "never" after 30 s: a password
    # check that then fails for another reason than the timeout.
    monkeypatch.setattr(secrets, "PASSWORD_COMMAND_TIMEOUT", 1.0)
    pid_file = tmp_path / "sleeper.pid"
    script = f"sleep 30 & echo $! > {shlex.quote(str(pid_file))}; wait; echo never"
    command_channel(support, dovecot, mail_user, shlex.join(["sh", "-c", script]))
    result = eddymail("channel", "test", "cmd", "--json", code=3)
    (check,) = json.loads(result.stdout)["channels"][0]["checks"]
    assert "did not finish within 1 seconds" in check["answer"]
    sleeper = int(pid_file.read_text())
    if running_sleeper(sleeper):
        os.kill(sleeper, signal.SIGKILL)  # our own leftover, checked above
        pytest.fail("the password command's child outlived the timeout")


@pytest.mark.parametrize("printed, password", [
    ("pw-one\n", "pw-one"), ("pw-one\r\n", "pw-one"), ("pw-one\n\n", "pw-one"),
    ("pw-one", "pw-one"), (" pw-one \n", " pw-one "), ("pw-one\nlogin: anna\nurl: x\n", "pw-one"),
])
def test_the_first_line_is_the_password(tmp_path, printed, password):
    command = script(tmp_path, "pw", f"import sys\nsys.stdout.write({printed!r})\n").split()
    assert secrets.run_password_command("cmd", command) == password


def test_a_password_command_with_a_trailing_newline_logs_in(eddymail, support, dovecot,
                                                            mail_user, tmp_path):
    secret_file = tmp_path / "pw"
    secret_file.write_text(mail_user.password + "\n")
    command_channel(support, dovecot, mail_user, f"cat {secret_file}")
    assert eddymail.json("channel", "test", "cmd")["channels"][0]["ok"] is True


def test_a_missing_password_command_is_named(tmp_path):
    with pytest.raises(SecretError, match="was not found"):
        secrets.run_password_command("cmd", [str(tmp_path / "no-such-program")])


# --- the keyring under cron ----------------------------------------------------------------


def cron_environment(home: Path, **extra: str) -> dict[str, str]:
    """What cron gives a job: a short PATH and HOME, nothing else."""
    return {"PATH": "/usr/bin:/bin", "HOME": str(home), **extra}


def run_cron(args: list[str], env: dict[str, str], input: str | None = None,
             ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "eddymail", *args], env=env, input=input,
                          capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize("args", [
    ["fetch"], ["-v", "fetch"], ["-q", "channel", "test", "support"],
    ["channel", "test", "support"],
], ids=["fetch", "fetch -v", "channel test -q", "channel test"])
def test_no_usable_keyring_under_cron_is_exit_4_and_one_line(eddymail, tmp_path, monkeypatch,
                                                             args):
    # The database where cron's eddymail looks by default: under $HOME.
    monkeypatch.delenv("EDDYMAIL_DATABASE_URL")
    eddymail("department", "add", "Support")
    eddymail("channel", "add", "support", "--department", "Support", "--email",
             "help@example.test", "--host", "127.0.0.1", "--port", "1", "--security", "ssl",
             "--password-stdin", input="secret\n")
    env = cron_environment(tmp_path / "home",
                           PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring")
    result = run_cron(args, env)
    assert result.returncode == 4, result
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "keyring" in lines[0].lower(), result.stderr
    assert "Traceback" not in result.stderr and "--password-command" in result.stderr


def test_plaintext_keyring_chosen_silently_is_reported_as_insecure(tmp_path, dovecot,
                                                                    mail_user):
    home = tmp_path / "cron-home"
    home.mkdir()
    # No PYTHON_KEYRING_BACKEND: keyring picks keyrings.alt's PlaintextKeyring by itself.
    env = cron_environment(home, XDG_DATA_HOME=str(tmp_path / "data"))
    steps = [
        (["department", "add", "Support"], None),
        (["channel", "add", "support", "--department", "Support", "--email", mail_user.address,
          "--login", mail_user.login, "--protocol", "imap", "--host", dovecot.host,
          "--port", str(dovecot.imaps_port), "--security", "ssl", "--ca-file",
          str(dovecot.pki.ca_file), "--password-stdin"], mail_user.password + "\n"),
    ]
    for args, stdin in steps:
        done = run_cron(args, env, input=stdin)
        assert done.returncode == 0, done
    stored = (tmp_path / "data" / "python_keyring" / "keyring_pass.cfg").read_text()
    assert "eddymail" in stored  # the password really sits in a plaintext file
    result = run_cron(["channel", "test", "support", "--json"], env)
    assert result.returncode == 0, result  # mail works: the warning does not fail the check
    (channel,) = json.loads(result.stdout)["channels"]
    checks = {check["check"]: check for check in channel["checks"]}
    assert channel["ok"] is True and checks["incoming"]["ok"] is True
    assert checks["keyring"]["ok"] is False and checks["keyring"]["warning"] is True
    assert "PlaintextKeyring" in checks["keyring"]["answer"]
    assert "--password-command" in checks["keyring"]["hint"]


def test_plaintext_keyring_row_in_the_table_and_not_for_password_commands(
        eddymail, support, dovecot, mail_user, tmp_path):
    keyring.set_keyring(PlaintextKeyring())
    support("support", "--email", mail_user.address, "--login", mail_user.login,
            "--protocol", "imap", "--host", dovecot.host, "--port", str(dovecot.imaps_port),
            "--security", "ssl", "--ca-file", str(dovecot.pki.ca_file),
            password=mail_user.password)
    secret_file = tmp_path / "pw"
    secret_file.write_text(mail_user.password)
    command_channel(support, dovecot, mail_user, f"cat {secret_file}")
    table = eddymail("channel", "test", "support").stdout
    assert "keyring" in table and "INSECURE" in table
    document = eddymail.json("channel", "test", "cmd")
    assert [c["check"] for c in document["channels"][0]["checks"]] == ["incoming"]
    assert os.environ["XDG_DATA_HOME"] in PlaintextKeyring().file_path  # never the real home
