"""Configuration lookup and validation, and the example file staying complete."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from eddymail.config import SCHEMA, load_config
from eddymail.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parent.parent / "eddymail.toml.example"


def test_no_file_at_all_gives_defaults(monkeypatch, isolated_environment):
    monkeypatch.delenv("EDDYMAIL_DATABASE_URL")
    config = load_config()
    assert config.path is None
    assert config.get("network", "timeout") == 30
    data_dir = isolated_environment / "home" / ".local" / "share" / "eddymail"
    assert config.database_url == f"sqlite:///{data_dir / 'eddymail.db'}"


def test_lookup_order_option_then_env_then_platform_dir(tmp_path, monkeypatch):
    platform = tmp_path / "home" / ".config" / "eddymail" / "eddymail.toml"
    platform.parent.mkdir(parents=True)
    platform.write_text('[agent]\nname = "from platform dir"\n')
    assert load_config().agent_identity[0] == "from platform dir"
    env_file = tmp_path / "env.toml"
    env_file.write_text('[agent]\nname = "from env"\n')
    monkeypatch.setenv("EDDYMAIL_CONFIG", str(env_file))
    assert load_config().agent_identity[0] == "from env"
    option_file = tmp_path / "option.toml"
    option_file.write_text('[agent]\nname = "from option"\n')
    assert load_config(option_file).agent_identity[0] == "from option"


def test_environment_overrides_the_database_url(tmp_path, monkeypatch):
    path = tmp_path / "c.toml"
    path.write_text('[database]\nurl = "sqlite:////from/file.db"\n')
    monkeypatch.setenv("EDDYMAIL_DATABASE_URL", "postgresql://u:p@127.0.0.1/eddy")
    assert load_config(path).database_url == "postgresql://u:p@127.0.0.1/eddy"


@pytest.mark.parametrize(("text", "message"), [
    ('[fetch]\ndeadlin = 5\n', "Unknown key 'fetch.deadlin'"),
    ('[fecth]\ndeadline = 5\n', "Unknown section [fecth]"),
    ('[network]\ntimeout = "30"\n', "'network.timeout' in"),
    ('[fetch]\nbatch_size = true\n', "must be an integer"),
    ('[fetch]\nbatch_size = 0\n', "greater than zero"),
    ('[logging]\nlevel = "loud"\n', "must be one of"),
    ('not toml at all [', "is not valid TOML"),
])
def test_bad_files_name_the_key_and_the_file(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert message in str(caught.value)
    if "TOML" not in message:
        assert str(path) in str(caught.value)


def test_named_file_must_exist(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.toml")


def test_cli_reports_config_errors_with_exit_4(eddymail, tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('[agent]\nnmae = "x"\n')
    result = eddymail("-c", str(path), "department", "list", code=4)
    assert "Unknown key 'agent.nmae'" in result.stderr
    assert "Traceback" not in result.stderr


def test_help_works_even_with_a_broken_config(eddymail, tmp_path, monkeypatch):
    path = tmp_path / "bad.toml"
    path.write_text("broken [")
    monkeypatch.setenv("EDDYMAIL_CONFIG", str(path))
    assert "Departments" in eddymail("department", "--help").stdout


def test_example_documents_every_key_and_is_valid():
    example = tomllib.loads(EXAMPLE.read_text())
    documented = {(section, key) for section, table in example.items() for key in table}
    declared = {(section, key) for section, keys in SCHEMA.items() for key in keys}
    assert documented == declared
    load_config(EXAMPLE)  # every value in it is acceptable
    text = EXAMPLE.read_text()
    for _section, key in declared:  # each key has a comment right above it
        lines = text.splitlines()
        index = next(i for i, line in enumerate(lines) if line.startswith(f"{key} ="))
        assert lines[index - 1].startswith("#"), key


@pytest.mark.parametrize("level, verbose", [("info", ()), ("warning", ("-v",)),
                                            ("debug", ("-q",))])
def test_a_log_file_gets_the_records_stderr_gets(eddymail, support, tmp_path, level, verbose):
    from tests.harness import free_port

    log_file = tmp_path / "logs" / "eddymail.log"
    log_file.parent.mkdir()
    config = tmp_path / "eddymail.toml"
    config.write_text(f'[logging]\nlevel = "{level}"\nfile = "{log_file}"\n')
    # Nothing listens there: the fetch fails, and logs that it did (at INFO).
    support("dead", "--email", "dead@example.test", "--protocol", "imap", "--host",
            "127.0.0.1", "--port", str(free_port()), "--security", "none")
    first = eddymail("-c", str(config), *verbose, "fetch", code=3)
    assert "fetch of dead failed" in first.stderr
    assert "fetch of dead failed" in log_file.read_text()
    # A second run appends to the file, and still writes to stderr too.
    second = eddymail("-c", str(config), *verbose, "fetch", code=3)
    assert "fetch of dead failed" in second.stderr
    assert log_file.read_text().count("fetch of dead failed") == 2


def test_without_a_log_file_records_go_to_stderr_only(eddymail, support, tmp_path):
    from tests.harness import free_port

    config = tmp_path / "eddymail.toml"
    config.write_text('[logging]\nlevel = "info"\n')
    support("dead", "--email", "dead@example.test", "--protocol", "imap", "--host",
            "127.0.0.1", "--port", str(free_port()), "--security", "none")
    assert "fetch of dead failed" in eddymail("-c", str(config), "fetch", code=3).stderr
    assert not list(tmp_path.rglob("*.log"))


def test_oauth_tables_give_a_teams_client_registration_per_provider(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[oauth.outlook]\nclient_id = " abc "\ntenant = "example.org"\n'
                    '[oauth.gmail]\nclient_id = "g-1"\n')
    config = load_config(path)
    assert config.oauth_default("outlook", "client_id") == "abc"
    assert config.oauth_default("outlook", "tenant") == "example.org"
    assert config.oauth_default("gmail", "tenant") == ""
    assert config.oauth_default("yandex", "client_id") == ""
    assert config.oauth_default(None, "client_id") == ""


@pytest.mark.parametrize(("text", "message"), [
    ('[oauth.mailru]\nclient_id = "x"\n', "Unknown table [oauth.mailru]"),
    ('[oauth.outlook]\nclientid = "x"\n', "Unknown key 'oauth.outlook.clientid'"),
    ('[oauth.outlook]\nclient_id = 5\n', "must be a string"),
    ('[oauth]\nclient_id = "x"\n', "Unknown table [oauth.client_id]"),
    ("oauth = 3\n", "must hold one table per provider"),
])
def test_bad_oauth_tables_are_named(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_config(path)


@pytest.mark.parametrize("environment", [
    {},  # neither variable: the defaults under $HOME
    {"XDG_CONFIG_HOME": "/srv/helpdesk/config", "XDG_DATA_HOME": "/srv/helpdesk/data"},
    {"XDG_CONFIG_HOME": "/trailing/slash/", "HOME": "/home/olga"},
])
def test_the_per_user_directories_are_those_platformdirs_names(monkeypatch, environment):
    # eddymail.config reads the XDG variables itself on Linux (platformdirs' Unix module
    # imports far more than a mail server's ingest needs); it must name the same folders.
    import platformdirs

    from eddymail.config import default_config_path, default_data_dir

    for name in ("XDG_CONFIG_HOME", "XDG_DATA_HOME"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    assert default_config_path() == Path(platformdirs.user_config_dir("eddymail"),
                                         "eddymail.toml")
    assert default_data_dir() == Path(platformdirs.user_data_dir("eddymail"))


@pytest.mark.parametrize("config_home, data_home", [("relative/config", "data"), (" ", "\t"),
                                                       ("", "")])
def test_a_relative_or_blank_xdg_directory_is_ignored(monkeypatch, tmp_path, config_home,
                                                       data_home):
    # The XDG Base Directory specification: a relative path "should be considered invalid
    # and ignored", as is an empty one (platformdirs 4 agrees; 2.x used the value as it was).
    from eddymail.config import default_config_path, default_data_dir

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", config_home)
    monkeypatch.setenv("XDG_DATA_HOME", data_home)
    assert default_config_path() == tmp_path / ".config" / "eddymail" / "eddymail.toml"
    assert default_data_dir() == tmp_path / ".local" / "share" / "eddymail"
