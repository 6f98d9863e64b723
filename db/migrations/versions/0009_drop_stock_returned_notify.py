"""stock that comes back is heard by every API process: any rise of a product's stock notifies, at commit

Revision ID: 0009_drop_stock_returned_notify
Revises: 0008_drop_product_terms_version
"""

from alembic import op

revision = "0009_drop_stock_returned_notify"
down_revision = "0008_drop_product_terms_version"
branch_labels = None
depends_on = None

# db/orders/stock_returns.py: STOCK_RETURNED_CHANNEL (the migration keeps its own copy: migrations never change).
CHANNEL = "sneaker_orders_stock_returned"


def upgrade() -> None:
    # However the stock rises (a cancel, an expiry, the seed's restock, an operator's UPDATE, a new row),
    # every listening API process forgets that it saw the product sold out. Orders only lower the stock:
    # the WHEN clause is all they cost (no function call, no notification).
    op.execute(
        f"""
        CREATE FUNCTION products_stock_returned() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('{CHANNEL}', NEW.id::text);
            RETURN NULL;
        END
        $$
        """
    )
    op.execute(
        """
        CREATE TRIGGER products_stock_rose AFTER UPDATE OF stock ON products
        FOR EACH ROW WHEN (NEW.stock > OLD.stock) EXECUTE FUNCTION products_stock_returned()
        """
    )
    op.execute(
        """
        CREATE TRIGGER products_stock_added AFTER INSERT ON products
        FOR EACH ROW WHEN (NEW.stock > 0) EXECUTE FUNCTION products_stock_returned()
        """
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER products_stock_added ON products")
    op.execute("DROP TRIGGER products_stock_rose ON products")
    op.execute("DROP FUNCTION products_stock_returned()")
