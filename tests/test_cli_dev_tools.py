"""`sneaker-orders token` and `pay` for demos, and start-up errors a person can read."""

import httpx
import pytest

from api.app import create_app
from cli.main import main
from devstack.dev_secrets import with_dev_secrets
from tests.support.admin import ADMIN_TOKEN
from tests.support.customers import JWT_SECRET
from tests.support.ordering import placed
from tests.support.payments import WEBHOOK_SECRET
from tests.support.ports import free_port
from tests.support.serving import serve

URL_PASSWORD = "url-password-that-must-stay-secret"
SECRETS = ("ADMIN_TOKEN", "AUTH_JWT_SECRET", "PAYMENT_WEBHOOK_SECRET", "AUTH_JWKS_URL", "AUTH_PUBLIC_KEY")


@pytest.fixture
def clean_environment(monkeypatch, tmp_path, database_url):
    """A terminal with nothing set but the database and a data directory of its own."""
    for name in SECRETS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SNEAKER_ORDERS_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("DATABASE_URL", database_url)
    return tmp_path


def token_from_cli(capsys, *arguments: str) -> str:
    assert main(["token", *arguments]) == 0
    return capsys.readouterr().out.strip()


def test_a_token_from_the_cli_is_accepted_by_the_api(api, catalog, monkeypatch, capsys):
    monkeypatch.setenv("AUTH_JWT_SECRET", JWT_SECRET)
    token = token_from_cli(capsys, "--customer", "c-cli", "--ttl", "60")

    response = api.get("/orders", headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 200


def test_pay_confirms_an_order_as_the_provider_would(api, api_url, catalog, monkeypatch, database_url, capsys):
    monkeypatch.setenv("PAYMENT_WEBHOOK_SECRET", WEBHOOK_SECRET)
    monkeypatch.setenv("DATABASE_URL", database_url)
    order = placed(api, (catalog.products["af1"], 2))

    assert main(["pay", str(order["order_id"]), "--payment-id", "pay-cli", "--api-url", api_url]) == 0

    assert "200" in capsys.readouterr().out
    confirmed = api.get(f"/orders/{order['order_id']}").json()
    assert (confirmed["status"], confirmed["payment_id"]) == ("CONFIRMED", "pay-cli")


def test_pay_with_a_wrong_amount_reports_the_refusal(api, api_url, catalog, monkeypatch, database_url, capsys):
    monkeypatch.setenv("PAYMENT_WEBHOOK_SECRET", WEBHOOK_SECRET)
    order = placed(api, (catalog.products["af1"], 1))

    assert main(["pay", str(order["order_id"]), "--amount", "1", "--api-url", api_url]) == 1

    assert "PAYMENT_AMOUNT_MISMATCH" in capsys.readouterr().out


def test_pay_names_an_unreachable_api_without_its_password(api, catalog, monkeypatch, database_url, capsys):
    monkeypatch.setenv("PAYMENT_WEBHOOK_SECRET", WEBHOOK_SECRET)
    monkeypatch.setenv("DATABASE_URL", database_url)
    order = placed(api, (catalog.products["af1"], 1))
    unreachable = f"http://payer:{URL_PASSWORD}@127.0.0.1:{free_port()}"

    assert main(["pay", str(order["order_id"]), "--api-url", unreachable]) == 1

    output = capsys.readouterr()
    assert "did not answer" in output.err and "http://127.0.0.1:" in output.err
    assert URL_PASSWORD not in output.out + output.err


def test_token_and_pay_work_from_another_terminal_with_nothing_set(clean_environment, settings, catalog, capsys):
    # The API of a development setup takes the same data directory's secrets (as `sneaker-orders run` hands them).
    development = with_dev_secrets(
        settings.model_copy(
            update={"data_dir": clean_environment, "auth_jwt_secret": None, "payment_webhook_secret": None}
        )
    )
    with serve(create_app(development)) as url:
        token = token_from_cli(capsys, "--customer", "demo")
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as client:
            order = client.post("/orders", json={"items": [{"product_id": catalog.products["af1"], "quantity": 1}]})
            assert order.status_code == 201
            assert main(["pay", str(order.json()["order_id"]), "--api-url", url]) == 0
            assert client.get(f"/orders/{order.json()['order_id']}").json()["status"] == "CONFIRMED"
    assert (clean_environment / "secrets.json").exists()


def test_a_short_admin_token_stops_the_start_with_a_readable_error(monkeypatch, capsys):
    monkeypatch.setenv("ADMIN_TOKEN", "too-short")

    for command in (["api"], ["worker"]):
        assert main(command) == 2
        error = capsys.readouterr().err
        assert "ADMIN_TOKEN: ADMIN_TOKEN must be at least 32 characters long" in error
        assert "Traceback" not in error


def test_the_api_does_not_start_without_its_secrets_when_a_database_is_configured(clean_environment, capsys):
    assert main(["api", "--port", "0"]) == 2

    error = capsys.readouterr().err
    assert "AUTH_JWT_SECRET" in error
    assert not (clean_environment / "secrets.json").exists(), "no secret may be generated for a configured database"


def test_the_api_names_a_missing_payment_webhook_secret(clean_environment, monkeypatch, capsys):
    monkeypatch.setenv("AUTH_JWT_SECRET", JWT_SECRET)
    monkeypatch.setenv("ADMIN_TOKEN", ADMIN_TOKEN)

    assert main(["api", "--port", "0"]) == 2

    assert "PAYMENT_WEBHOOK_SECRET is not set" in capsys.readouterr().err
