"""What users run outside the suite: docker-compose.yml (no Docker engine here: it is parsed), the Makefile and CI."""

import re
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
# A version pinned to at least major.minor (postgres:17.6, temporalio/ui:2.54.1): never `latest` or a major alone.
PINNED = re.compile(r":\d+\.\d+(\.\d+)?([-.][\w.-]+)?(@sha256:[0-9a-f]{64})?$")
VARIABLE = re.compile(r"\$\{(\w+)(?::?[-?][^}]*)?\}")


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_docker_compose_describes_the_whole_system():
    services = compose()["services"]

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


def test_every_published_port_is_bound_to_loopback_by_default():
    services = compose()["services"]

    published = {name: service.get("ports", []) for name, service in services.items()}
    assert published["postgres"] == []
    for name in ("temporal", "temporal-ui", "sink"):
        assert published[name] and all(port.startswith("127.0.0.1:") for port in published[name]), name
    assert published["api"] == ["${API_BIND_ADDRESS:-127.0.0.1}:8000:8000"]


def test_the_shop_and_temporal_have_their_own_database_users_with_passwords_from_the_env_file():
    services = compose()["services"]

    shop_url = services["api"]["environment"]["DATABASE_URL"]
    assert shop_url.startswith("postgresql+psycopg://shop:${SHOP_DB_PASSWORD:?")
    temporal = services["temporal"]["environment"]
    assert temporal["POSTGRES_USER"] == "temporal"
    assert temporal["POSTGRES_PWD"].startswith("${TEMPORAL_DB_PASSWORD:?")
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"].startswith("${POSTGRES_SUPERUSER_PASSWORD:?")
    init = (ROOT / "deploy" / "postgres" / "init-roles.sh").read_text()
    assert "CREATE ROLE shop LOGIN PASSWORD :'shop_password'" in init
    assert "CREATE ROLE temporal LOGIN CREATEDB PASSWORD :'temporal_password'" in init
    assert any("init-roles.sh:/docker-entrypoint-initdb.d/" in volume for volume in services["postgres"]["volumes"])


def test_secrets_are_required_from_the_env_file_never_defaulted():
    text = (ROOT / "docker-compose.yml").read_text()

    for secret in ("ADMIN_TOKEN", "PAYMENT_WEBHOOK_SECRET", "SHOP_DB_PASSWORD", "TEMPORAL_DB_PASSWORD"):
        assert re.search(rf"\$\{{{secret}:\?", text), f"{secret} must be required (${{{secret}:?...}})"
    assert "shop:shop@" not in text and "POSTGRES_PWD: shop" not in text


def test_the_env_file_is_documented_and_never_committed():
    documented = {
        line.split("=", 1)[0] for line in (ROOT / ".env.example").read_text().splitlines() if re.match(r"^\w+=", line)
    }
    used = set(VARIABLE.findall((ROOT / "docker-compose.yml").read_text()))

    assert used <= documented, f"undocumented in .env.example: {sorted(used - documented)}"
    assert ".env" in (ROOT / ".gitignore").read_text().splitlines()
    ignored = subprocess.run(["git", "check-ignore", "-q", ".env"], cwd=ROOT, check=False)
    assert ignored.returncode == 0


def test_every_image_is_pinned_by_version():
    services = compose()["services"]
    images = {name: service["image"] for name, service in services.items() if "build" not in service}
    [base] = re.findall(r"^FROM (\S+)", (ROOT / "Dockerfile").read_text(), flags=re.MULTILINE)

    for name, image in {**images, "Dockerfile": base}.items():
        assert PINNED.search(image), f"{name}: {image} is not pinned to a version"


def test_the_image_ships_every_package_of_the_project():
    dockerfile = (ROOT / "Dockerfile").read_text()

    for part in ("worker.py", "api", "activities", "cli", "db", "devstack", "sneaker_orders", "workflows"):
        assert f"COPY {part} " in dockerfile


def test_ci_runs_exactly_the_readme_test_command():
    assert (ROOT / ".ci" / "run").read_text().strip().endswith("make test")
    readme = (ROOT / "README.md").read_text()
    assert "make run" in readme and "make test" in readme


def test_compose_runs_temporal_with_its_default_search_attribute_limits():
    services = compose()["services"]

    assert "DYNAMIC_CONFIG_FILE_PATH" not in services["temporal"]["environment"]
    assert not services["temporal"].get("volumes")
    for name, service in services.items():
        assert not [key for key in service.get("environment", {}) if key.startswith("TEMPORAL_SEARCH_ATTRIBUTE")], name
