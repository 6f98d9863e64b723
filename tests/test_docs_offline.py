"""/docs (Swagger UI) and /redoc work without internet: every asset they load comes from this server."""

import re
from urllib.parse import urljoin

import pytest

# src="...", href="...", and the script-set URLs Swagger UI's page passes to its bundle.
ASSET_REFERENCES = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']|url:\s*["']([^"']+)["']""")


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_docs_pages_load_only_assets_this_server_serves(api, page):
    html = api.get(page)
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")

    references = [first or second for first, second in ASSET_REFERENCES.findall(html.text)]

    assert references, "the page loads its scripts from somewhere"
    assert not re.search(r"https?://", html.text), "no absolute URL: nothing from a CDN or a font service"
    for reference in references:
        assert reference.startswith("/"), reference
        asset = api.get(urljoin(str(api.base_url), reference))
        assert asset.status_code == 200, reference
        assert len(asset.content) > 100, reference


def test_the_swagger_bundle_and_redoc_are_the_real_scripts(api):
    html = api.get("/docs").text + api.get("/redoc").text
    scripts = [first for first, _ in ASSET_REFERENCES.findall(html) if first.endswith(".js")]

    sizes = {script.rsplit("/", 1)[-1]: len(api.get(script).content) for script in scripts}

    assert sizes.keys() == {"swagger-ui-bundle.js", "redoc.standalone.js"}
    assert all(size > 500_000 for size in sizes.values()), sizes
