"""The broker's classpath: a throwaway POM resolved with ``mvn`` from Maven Central."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from eventml.testing.kafka._common import (
    DEPENDENCY_PLUGIN,
    KAFKA_VERSION,
    LOG4J_VERSION,
    MARKER_NAME,
    KafkaUnavailable,
    _file_lock,
    _text_tail,
    default_home,
)


def render_pom(kafka_version: str, slf4j_binding: str) -> str:
    """A throwaway POM whose runtime dependencies are the broker's classpath."""
    deps = [
        ("org.apache.kafka", "kafka_2.13", kafka_version),
        ("org.apache.logging.log4j", "log4j-api", LOG4J_VERSION),
        ("org.apache.logging.log4j", "log4j-core", LOG4J_VERSION),
        ("org.apache.logging.log4j", slf4j_binding, LOG4J_VERSION),
    ]
    dep_xml = "\n".join(
        f"    <dependency><groupId>{g}</groupId><artifactId>{a}</artifactId>"
        f"<version>{v}</version></dependency>"
        for g, a, v in deps
    )
    return (
        '<project xmlns="http://maven.apache.org/POM/4.0.0">\n'
        "  <modelVersion>4.0.0</modelVersion>\n"
        "  <groupId>eventml.local</groupId>\n"
        "  <artifactId>kafka-broker-classpath</artifactId>\n"
        "  <version>1</version>\n"
        "  <packaging>pom</packaging>\n"
        "  <dependencies>\n"
        f"{dep_xml}\n"
        "  </dependencies>\n"
        "</project>\n"
    )


def _require_mvn() -> str:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise KafkaUnavailable(
            "mvn not found on PATH: install Maven (e.g. apt-get install maven) to fetch the Kafka "
            "jars, or set EVENTML_KAFKA_HOME to a dir whose lib/ already holds them"
        )
    return mvn


def _jars_complete(lib_dir: Path, kafka_version: str) -> bool:
    marker = lib_dir / MARKER_NAME
    try:
        recorded = marker.read_text().strip()
    except OSError:
        return False
    return recorded == kafka_version and (lib_dir / f"kafka_2.13-{kafka_version}.jar").is_file()


def _slf4j_major(lib_dir: Path) -> int | None:
    for jar in lib_dir.glob("slf4j-api-*.jar"):
        match = re.match(r"slf4j-api-(\d+)\.", jar.name)
        if match:
            return int(match.group(1))
    return None


def _run_mvn(mvn: str, pom: Path, out_dir: Path, kafka_version: str) -> None:
    cmd = [
        mvn,
        "-B",
        "-q",
        "-f",
        str(pom),
        DEPENDENCY_PLUGIN,
        f"-DoutputDirectory={out_dir}",
        "-DincludeScope=runtime",
    ]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
    except subprocess.TimeoutExpired as exc:
        raise KafkaUnavailable(
            f"mvn did not resolve org.apache.kafka:kafka_2.13:{kafka_version} within 15 min: "
            "check network access to Maven Central"
        ) from exc
    if proc.returncode != 0:
        output = proc.stdout + proc.stderr
        errors = [ln for ln in output.splitlines() if "ERROR" in ln]
        first = errors[0].replace("[ERROR]", "").strip() if errors else "see output"
        raise KafkaUnavailable(
            f"mvn failed (exit {proc.returncode}) resolving org.apache.kafka:kafka_2.13:"
            f"{kafka_version}: {first[:300]} -- check network access to Maven Central and the "
            "version (EVENTML_KAFKA_VERSION)",
            _text_tail(output),
        )


def ensure_jars(cache_dir: Path | None = None, kafka_version: str = KAFKA_VERSION) -> Path:
    """Make sure ``<cache_dir>/lib`` holds the broker's runtime classpath; return that dir.

    Skips everything when ``lib/.complete`` (written after a successful fetch) names
    ``kafka_version``.  Otherwise writes ``<cache_dir>/pom.xml`` and runs
    ``mvn ... maven-dependency-plugin:3.6.1:copy-dependencies`` into a staging dir
    that replaces ``lib`` only once complete.
    """
    home = (cache_dir or default_home()).resolve()
    lib_dir = home / "lib"
    if _jars_complete(lib_dir, kafka_version):
        return lib_dir
    with _file_lock(home / ".fetch.lock"):
        if _jars_complete(lib_dir, kafka_version):  # another process fetched meanwhile
            return lib_dir
        mvn = _require_mvn()
        pom = home / "pom.xml"
        staging = home / f"lib.staging-{os.getpid()}"
        # Kafka 4.x declares slf4j-api 1.7.x; if a release moves to 2.x, switch binding.
        for binding in ("log4j-slf4j-impl", "log4j-slf4j2-impl"):
            shutil.rmtree(staging, ignore_errors=True)
            pom.write_text(render_pom(kafka_version, binding))
            _run_mvn(mvn, pom, staging, kafka_version)
            major = _slf4j_major(staging)
            wants_v2 = binding == "log4j-slf4j2-impl"
            if major is None or (major >= 2) == wants_v2:
                break
        if not any(staging.glob(f"kafka_2.13-{kafka_version}.jar")):
            shutil.rmtree(staging, ignore_errors=True)
            raise KafkaUnavailable(
                f"mvn finished but kafka_2.13-{kafka_version}.jar is missing from {staging}: "
                f"delete {home} and retry"
            )
        (staging / MARKER_NAME).write_text(kafka_version + "\n")
        shutil.rmtree(lib_dir, ignore_errors=True)
        staging.rename(lib_dir)
    return lib_dir
