"""The PSTN simulator's script: parsing (one-line errors) and seeded choices."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.app import app
from pbx.errors import ConfigError
from pbx.sim.script import Behaviour, KeyPress, load_script, parse_script

DATA = Path(__file__).parent.parent / "data" / "sim"


def test_the_test_script_parses() -> None:
    script = load_script(DATA / "basic.toml")
    assert script.seed == 12
    assert script.accounts == {"trunk1": "s3cret-trunk"}
    assert script.choose("0800123456", 0)[0] is Behaviour.BUSY
    assert script.choose("0900123456", 5)[0] is Behaviour.CONGESTION
    behaviour, rule = script.choose("0200123456", 0)
    assert (behaviour, rule.no_answer_status, rule.no_answer_seconds) == (
        Behaviour.NO_ANSWER, 408, 0.5,
    )  # fmt: skip
    assert script.choose("12345", 0)[0] is Behaviour.INVALID  # the default


def test_choices_repeat_with_the_seed_and_follow_the_weights() -> None:
    text = 'seed = 3\n[[numbers]]\npattern = "_X."\nweights = { live = 3, busy = 1 }\n'
    script = parse_script(text)
    first = [script.choose("0123", n)[0] for n in range(400)]
    assert first == [parse_script(text).choose("0123", n)[0] for n in range(400)]
    counts = Counter(first)
    assert set(counts) == {Behaviour.LIVE, Behaviour.BUSY}
    assert 240 < counts[Behaviour.LIVE] < 360  # 3:1 of 400, far from any edge
    other = parse_script(text.replace("seed = 3", "seed = 4"))
    assert [other.choose("0123", n)[0] for n in range(400)] != first


def test_most_specific_pattern_wins() -> None:
    text = (
        '[[numbers]]\npattern = "_0X."\nbehaviour = "live"\n'
        '[[numbers]]\npattern = "_08."\nbehaviour = "busy"\n'
    )
    script = parse_script(text)
    assert script.choose("0812", 0)[0] is Behaviour.BUSY
    assert script.choose("0712", 0)[0] is Behaviour.LIVE


def test_keys_a_person_presses() -> None:
    text = (
        '[[numbers]]\npattern = "_01."\nbehaviour = "live"\n'
        'keys = [{ after = 2.5, digits = "1" }, { after = 0, digits = "9#a", from = "answer" }]\n'
        '[[numbers]]\npattern = "_02."\nbehaviour = "live"\n'
    )
    script = parse_script(text)
    assert script.rule_for("0123").keys == (
        KeyPress(2.5, "1", "prompt"),
        KeyPress(0.0, "9#A", "answer"),
    )
    assert script.rule_for("0223").keys == ()


KEYS = "[[numbers]]\npattern = '_0.'\nkeys = "
BAD = [
    (KEYS + "'1'", "script: numbers entry 1: keys must be a list like [{ after = 2.5,"),
    (KEYS + "[1]", "script: numbers entry 1: keys must be a list like"),
    (KEYS + "[{ digits = '1' }]", "script: numbers entry 1: keys entry needs after (seconds)"),
    (
        KEYS + "[{ after = 1, digits = '1x' }]",
        "script: numbers entry 1: keys digits must be 1 to 16 of 0-9 * # A-D",
    ),
    (KEYS + "[{ after = 1, digits = '' }]", "script: numbers entry 1: keys digits must be"),
    (
        KEYS + "[{ after = -1, digits = '1' }]",
        "script: numbers entry 1: keys: after must be between 0 and 3600",
    ),
    (
        KEYS + "[{ after = 1, digits = '1', from = 'ring' }]",
        'script: numbers entry 1: keys from must be "prompt" or "answer"',
    ),
    (
        KEYS + "[{ after = 1, digits = '1', hold = 2 }]",
        "script: numbers entry 1: unknown key 'hold' in keys",
    ),
    ("seed = ", "script: not valid TOML: "),
    ("colour = 1", "script: unknown key 'colour'"),
    ('seed = "x"', "script: seed must be an integer"),
    ("[[numbers]]\nbehaviour = 'busy'", "script: numbers entry 1: needs a pattern"),
    (
        "[[numbers]]\npattern = '_0['",
        "dial pattern '_0[': '[' without ']'",
    ),
    (
        "[[numbers]]\npattern = '_0.'\nbehaviour = 'angry'",
        "script: numbers entry 1: unknown behaviour 'angry' (known: live, machine, busy, "
        "no_answer, invalid, congestion, slow_answer)",
    ),
    (
        "[[numbers]]\npattern = '_0.'\nring_seconds = -1",
        "script: numbers entry 1: ring_seconds must be between 0 and 3600",
    ),
    (
        "[[numbers]]\npattern = '_0.'\nno_answer_status = 500",
        "script: numbers entry 1: no_answer_status must be 408 or 480",
    ),
    (
        "[[numbers]]\npattern = '_0.'\nweights = { live = 0 }",
        "script: numbers entry 1: the weights add up to 0",
    ),
    ("[accounts]\nt = 1", "script: the password of account t must be a text"),
]


@pytest.mark.parametrize(("text", "message"), BAD)
def test_bad_scripts_are_one_line_errors(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_script(text)
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)


def test_unreadable_script(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot read .*nope\.toml: No such file"):
        load_script(tmp_path / "nope.toml")


def _one_error(args: list[str]) -> str:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stdout + result.stderr
    [line] = result.stderr.splitlines()
    return line


def test_cli_errors_are_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[[numbers]]\npattern = '_0['\n")
    assert _one_error(["sim", "pstn", "--script", str(bad)]) == (
        "pbx: error: dial pattern '_0[': '[' without ']'"
    )
    script = str(DATA / "basic.toml")
    assert _one_error(["sim", "pstn", "--script", script, "--host", "192.0.2.1"]) == (
        "pbx: error: --host 192.0.2.1: the simulator listens on loopback only"
    )
    assert _one_error(["sim", "pstn", "--script", script, "--host", "example.org"]) == (
        "pbx: error: --host 'example.org' is not an IP address"
    )


def test_cli_call_errors_are_one_line() -> None:
    script = str(DATA / "basic.toml")
    base = ["sim", "pstn", "--script", script]
    assert _one_error([*base, "--number", "1"]) == "pbx: error: --number needs --call HOST:PORT"
    assert _one_error([*base, "--call", "127.0.0.1:5060"]) == (
        "pbx: error: --call needs at least one --number"
    )
    assert _one_error([*base, "--call", "127.0.0.1", "--number", "1"]) == (
        "pbx: error: --call '127.0.0.1': give HOST:PORT"
    )
    line = _one_error([*base, "--call", "no-such-host.invalid:5060", "--number", "1"])
    assert line.startswith("pbx: error: --call no-such-host.invalid:5060: cannot resolve")
