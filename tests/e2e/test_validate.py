"""`meshtrace validate` and `meshtrace components`: every config mistake is reported at once,
with its key path (golden file), and good configs, the seed's included, are valid.

After an intended change of the messages, regenerate the golden file with
`MESHTRACE_UPDATE_GOLDEN=1 pytest tests/e2e/test_validate.py` and read the diff."""

import os
import re
import subprocess
from pathlib import Path

import pytest

from conftest import REPO, require_binary

HERE = Path(__file__).parent
GOLDEN = HERE / "golden" / "invalid.expected"
SEED = HERE / "seed" / "otel-collector-config.yaml"

# One of each mistake; ports are never bound by `validate`.
INVALID = """
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:4317
  otlp/twin:
    protocols:
      grpc:
        endpoint: 127.0.0.1:4317
  zipkinish:
    endpoint: 127.0.0.1:9411
processors:
  batch:
    send_batch_sizee: 100
  batch/slow:
    timeout: 5 parsecs
exporters:
  debug:
extensions:
  health_check:
    endpoint: 127.0.0.1:99999
service:
  extensions: [health_check]
  pipelines:
    traces:
      receivers: [otlp, otlp/twin]
      processors: [batch, batch/slow]
      exporters: [debug, otlp/nowhere]
"""


def run(*args, env=None, tmp_path=None):
    """Runs the binary with `args`; returns the CompletedProcess (text)."""
    return subprocess.run(
        [str(require_binary()), *args],
        capture_output=True,
        text=True,
        timeout=30,
        env=dict(os.environ, **(env or {})),
        cwd=tmp_path,
    )


def validate(tmp_path, text, env=None):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return run("validate", "--config", str(path), env=env, tmp_path=tmp_path)


def test_every_mistake_is_reported_with_its_key_path(tmp_path):
    """An invalid config exits 1 and stderr lists each error exactly as in the golden file:
    unknown type, unknown key, undeclared exporter, bad duration, bad port, port conflict."""
    result = validate(tmp_path, INVALID)
    assert result.returncode == 1, result
    if os.environ.get("MESHTRACE_UPDATE_GOLDEN") == "1":
        GOLDEN.write_text(result.stderr)
    expected = GOLDEN.read_text().splitlines()
    actual = result.stderr.splitlines()
    assert expected[0].startswith("meshtrace: invalid configuration (")
    missing = [line for line in expected if line not in actual]
    assert not missing, f"missing lines: {missing}\nstderr was:\n{result.stderr}"
    assert len(actual) == len(expected), f"unexpected extra lines:\n{result.stderr}"
    assert result.stdout == ""


def seed_with_placeholders_filled():
    return (
        SEED.read_text()
        .replace("<gRPC-Endpoint>", "collector.example:4317")
        .replace("<gRPC-Token>", "t0ken")
    )


def test_seed_config_is_valid(tmp_path):
    """The seed config with its placeholders filled validates."""
    result = validate(tmp_path, seed_with_placeholders_filled())
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("configuration is valid"), result.stdout


@pytest.mark.parametrize("name", ["collector.yaml", "seed-otel-collector.yaml"])
def test_examples_are_valid(name):
    """The README's example configs validate (the seed one with its env variables set)."""
    env = {"OTLP_ENDPOINT": "collector.example:4317", "OTLP_TOKEN": "t0ken"}
    result = run("validate", "--config", str(REPO / "examples" / name), env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("configuration is valid"), result.stdout


def test_components_lists_the_seed_types():
    """`components` names every component type the seed and the README use."""
    result = run("components")
    assert result.returncode == 0, result.stderr
    for type_name in ["otlp", "batch", "otlphttp", "debug", "logging", "health_check"]:
        pattern = rf"(?<![\w/]){re.escape(type_name)}(?![\w/])"
        assert re.search(pattern, result.stdout), (type_name, result.stdout)
