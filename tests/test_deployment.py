"""What users run outside the suite: docker-compose.yml (no Docker engine here: it is parsed), the Makefile and CI."""

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def test_docker_compose_describes_the_whole_system():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]

    assert {"postgres", "temporal", "temporal-ui", "api", "worker", "sink", "migrate"} <= set(services)
    assert services["temporal"]["image"].startswith("temporalio/auto-setup")
    assert services["temporal"]["environment"]["DB"] == "postgres12"
    assert services["temporal-ui"]["image"].startswith("temporalio/ui")
    for app in ("api", "worker", "sink", "migrate"):
        environment = services[app]["environment"]
        assert environment["DATABASE_URL"].startswith("postgresql+psycopg://")
        assert environment["TEMPORAL_ADDRESS"] == "temporal:7233"
        assert environment["EXTERNAL_PLATFORM_URL"] == "http://sink:8081"
    assert services["worker"]["command"] == ["worker"]
    assert services["worker"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"


def test_the_image_ships_every_package_of_the_project():
    dockerfile = (ROOT / "Dockerfile").read_text()

    for part in ("worker.py", "api", "activities", "db", "sneaker_orders", "workflows"):
        assert f"COPY {part} " in dockerfile


def test_ci_runs_exactly_the_readme_test_command():
    assert (ROOT / ".ci" / "run").read_text().strip().endswith("make test")
    readme = (ROOT / "README.md").read_text()
    assert "make run" in readme and "make test" in readme
