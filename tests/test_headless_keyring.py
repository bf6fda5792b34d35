"""The README's advice for a server without a desktop keyring, run the way cron runs it:
a child process with a scrubbed environment (no D-Bus, no keyring service), a new session
without a controlling terminal, stdin not a terminal."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.mailfactory import make_mail

PLAINTEXT = "keyrings.alt.file.PlaintextKeyring"
ENCRYPTED = "keyrings.alt.file.EncryptedKeyring"  # needs pycryptodome, not installed here
PROMPTING = "tests.harness.keyring_backend.PromptingKeyring"  # asks like EncryptedKeyring
REPO_ROOT = Path(__file__).resolve().parent.parent


class Cron:
    """Runs ``eddymail`` like a crontab line would, with only what the README says to set."""

    def __init__(self, home: Path, backend: str) -> None:
        self.home = home
        self.environment = {
            # Only so that the test backend can be imported; eddymail itself is installed.
            "PYTHONPATH": str(REPO_ROOT),
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),
            "LANG": "C.UTF-8",
            "PYTHON_KEYRING_BACKEND": backend,
            "EDDYMAIL_DATABASE_URL": f"sqlite:///{home / 'eddymail.db'}",
        }

    def __call__(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "eddymail", *args], env=self.environment, cwd=self.home,
            input=input, stdin=None if input is not None else subprocess.DEVNULL,
            capture_output=True, text=True, timeout=120, start_new_session=True, check=False)


@pytest.fixture
def cron(tmp_path: Path):
    def make(backend: str) -> Cron:
        home = tmp_path / "home-of-cron"
        home.mkdir(exist_ok=True)
        runner = Cron(home, backend)
        assert runner("-q", "init").returncode == 0
        return runner

    return make


def channel_options(dovecot, mail_user) -> list[str]:
    return ["channel", "add", "support", "--department", "Support", "--email", mail_user.address,
            "--login", mail_user.login, "--host", dovecot.host, "--port",
            str(dovecot.imaps_port), "--security", "ssl", "--ca-file",
            str(dovecot.pki.ca_file), "--initial", "all", "--no-notify"]


def test_file_keyring_as_the_readme_says_works_under_cron(cron, dovecot, mail_user):
    run = cron(PLAINTEXT)
    dovecot.deliver(mail_user, make_mail("Printer on fire"))
    added = run(*channel_options(dovecot, mail_user), "--password-stdin",
                input=mail_user.password + "\n")
    assert added.returncode == 0, added.stderr
    fetched = run("-q", "fetch")
    assert (fetched.returncode, fetched.stdout, fetched.stderr) == (0, "", "")
    listed = json.loads(run("ticket", "list", "--json").stdout)["tickets"]
    assert [t["subject"] for t in listed] == ["Printer on fire"]
    store = run.home / ".local" / "share" / "python_keyring" / "keyring_pass.cfg"
    assert stat.S_IMODE(store.stat().st_mode) == 0o600
    assert mail_user.password.encode() not in (run.home / "eddymail.db").read_bytes()


def test_a_keyring_that_prompts_is_refused_under_cron_not_asked(cron, dovecot, mail_user):
    run = cron(PROMPTING)
    added = run(*channel_options(dovecot, mail_user), "--password-stdin",
                input=mail_user.password + "\n")
    assert added.returncode == 4, added.stderr
    assert "asks for its own password" in added.stderr
    assert "no terminal to type it in" in added.stderr
    assert "Passwords on a headless server" in added.stderr
    for text in ("Traceback", "Unexpected", "Please enter password", "EOFError"):
        assert text not in added.stderr
    assert json.loads(run("channel", "list", "--json").stdout)["channels"] == []
    # The other advice, a password command, needs no keyring at all.
    secret = run.home / "support.password"
    secret.write_text(mail_user.password + "\n")
    secret.chmod(0o600)
    dovecot.deliver(mail_user, make_mail("Via the password command"))
    added = run(*channel_options(dovecot, mail_user), "--password-command", f"cat {secret}")
    assert added.returncode == 0, added.stderr
    fetched = run("-q", "fetch")
    assert (fetched.returncode, fetched.stderr) == (0, "")


def test_the_old_advice_fails_clearly_not_with_an_internal_error(cron, dovecot, mail_user):
    """The encrypted file keyring without its crypto package: exit 4 and what to do."""
    run = cron(ENCRYPTED)
    added = run(*channel_options(dovecot, mail_user), "--password-stdin",
                input=mail_user.password + "\n")
    assert added.returncode == 4, added.stderr
    assert "keyring" in added.stderr.lower() and "--password-command" in added.stderr
    assert "Traceback" not in added.stderr and "Unexpected" not in added.stderr
