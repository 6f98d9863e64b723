#!/bin/sh
# Runs once, when the postgres volume is first created (docker-entrypoint-initdb.d): one role and
# database for the shop, one role for Temporal (which creates its own databases). Passwords come
# from .env through the container's environment and are quoted by psql (:'variable').
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
     -v shop_password="$SHOP_DB_PASSWORD" -v temporal_password="$TEMPORAL_DB_PASSWORD" <<'SQL'
CREATE ROLE shop LOGIN PASSWORD :'shop_password';
CREATE DATABASE sneaker_orders OWNER shop;
REVOKE ALL ON DATABASE sneaker_orders FROM PUBLIC;
CREATE ROLE temporal LOGIN CREATEDB PASSWORD :'temporal_password';
SQL
