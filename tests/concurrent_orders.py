"""Sending many order requests at once, each on its own connection."""

import asyncio

import httpx


def place_concurrently(api_url: str, bodies: list[dict]) -> list[httpx.Response]:
    """Send every body at once (one connection each) and return the responses in order."""

    async def send_all() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=len(bodies))
        async with httpx.AsyncClient(base_url=api_url, timeout=60, limits=limits) as client:
            return await asyncio.gather(*(client.post("/orders", json=body) for body in bodies))

    return asyncio.run(send_all())
