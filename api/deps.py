"""Dependencies routes declare: the process-wide engine and settings."""

from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncEngine

from sneaker_orders.settings import Settings


async def get_engine(request: Request) -> AsyncEngine:
    """The engine built at start-up."""
    return request.app.state.engine


async def get_settings(request: Request) -> Settings:
    """The settings the app was built with."""
    return request.app.state.settings


EngineDep = Annotated[AsyncEngine, Depends(get_engine)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
