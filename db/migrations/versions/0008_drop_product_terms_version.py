"""a product's terms (price, active, max_per_customer) pinned by updated_at: every change of them moves it

Revision ID: 0008_drop_product_terms_version
Revises: 0007_traceparent
"""

from alembic import op

revision = "0008_drop_product_terms_version"
down_revision = "0007_traceparent"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The placement decides an order in Python and its write checks only that updated_at is the one the
    # decision read (db/orders/placement.py): so any statement that changes the terms, the seed's upsert or
    # an operator's UPDATE, must move it. clock_timestamp(): two changes in one transaction differ too.
    # Stock changes name none of these columns and do not fire the trigger.
    op.execute(
        """
        CREATE FUNCTION products_terms_changed() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF (NEW.price, NEW.active, NEW.max_per_customer)
               IS DISTINCT FROM (OLD.price, OLD.active, OLD.max_per_customer) THEN
                NEW.updated_at := clock_timestamp();
            END IF;
            RETURN NEW;
        END
        $$
        """
    )
    op.execute(
        """
        CREATE TRIGGER products_terms_version BEFORE UPDATE OF price, active, max_per_customer ON products
        FOR EACH ROW EXECUTE FUNCTION products_terms_changed()
        """
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER products_terms_version ON products")
    op.execute("DROP FUNCTION products_terms_changed()")
