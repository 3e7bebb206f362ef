"""Table models for storage, check-outs and distribution (DOMAIN.md §2 "Storage", "Distribution").

One position holds one specimen (UNIQUE container/position), one specimen has one location (UNIQUE specimen) and
at most one open check-out (a partial unique index): the database holds these rules, not only the services.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, Index, UniqueConstraint, text
from sqlmodel import Field

from biobank.db.engine import UTCDateTime
from biobank.domain.storage.kinds import ContainerKind, TemperatureClass
from biobank.domain.storage.orders import DistributionUse, OrderStatus
from biobank.models.base import Tracked, not_blank, one_of, safe_code, utcnow


class Container(Tracked, table=True):
    """A node of the storage tree: site, room, freezer or tank, rack or shelf, box, bag."""

    __tablename__ = "container"
    __table_args__ = (
        safe_code("code_safe", "code"),
        one_of("kind", "kind", ContainerKind),
        one_of("temperature_class", "temperature_class", TemperatureClass, nullable=True),
        CheckConstraint(
            "(kind = 'site' AND parent_id IS NULL) OR (kind <> 'site' AND parent_id IS NOT NULL)",
            name="only_sites_at_root",
        ),
        CheckConstraint("parent_id IS NULL OR parent_id <> id", name="not_own_parent"),
        CheckConstraint(
            "(grid_rows IS NULL AND grid_cols IS NULL) OR (grid_rows >= 1 AND grid_cols >= 1)", name="grid_size"
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(unique=True, max_length=40)
    kind: str = Field(max_length=20)
    name: str | None = Field(default=None, max_length=120)
    parent_id: int | None = Field(default=None, foreign_key="container.id", ondelete="RESTRICT", index=True)
    temperature_class: str | None = Field(default=None, max_length=10)
    grid_rows: int | None = None
    grid_cols: int | None = None
    note: str | None = Field(default=None, max_length=300)


class SpecimenLocation(Tracked, table=True):
    """Where a specimen is now. The row goes when the specimen leaves (distributed); its history is in custody."""

    __tablename__ = "specimen_location"
    __table_args__ = (
        UniqueConstraint("container_id", "position"),
        not_blank("position_not_blank", "position"),
    )

    id: int | None = Field(default=None, primary_key=True)
    specimen_id: int = Field(foreign_key="specimen.id", ondelete="RESTRICT", unique=True)
    container_id: int = Field(foreign_key="container.id", ondelete="RESTRICT", index=True)
    position: str | None = Field(default=None, max_length=8)
    placed_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Checkout(Tracked, table=True):
    """A specimen taken out of storage to work on; open until returned."""

    __tablename__ = "checkout"
    __table_args__ = (
        CheckConstraint("returned_at IS NULL OR returned_at >= checked_out_at", name="returned_after_out"),
        CheckConstraint(
            "(returned_at IS NULL AND returned_by_id IS NULL) OR (returned_at IS NOT NULL AND returned_by_id IS NOT NULL)",
            name="return_has_user",
        ),
        Index(
            "ix_checkout_one_open_per_specimen",
            "specimen_id",
            unique=True,
            sqlite_where=text("returned_at IS NULL"),
            postgresql_where=text("returned_at IS NULL"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    specimen_id: int = Field(foreign_key="specimen.id", ondelete="RESTRICT", index=True)
    checked_out_at: datetime = Field(sa_type=UTCDateTime)
    checked_out_by_id: int = Field(foreign_key="user_account.id", ondelete="RESTRICT")
    purpose: str | None = Field(default=None, max_length=300)
    from_location: str | None = Field(default=None, max_length=200)
    returned_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    returned_by_id: int | None = Field(default=None, foreign_key="user_account.id", ondelete="RESTRICT")
    kept_frozen: bool | None = None


class DistributionOrder(Tracked, table=True):
    """A request from a study: recipient, purpose, the approving PI, shipment and its state."""

    __tablename__ = "distribution_order"
    __table_args__ = (
        safe_code("code_safe", "code"),
        not_blank("study_not_blank", "study"),
        not_blank("recipient_not_blank", "recipient"),
        one_of("use", "use", DistributionUse),
        one_of("status", "status", OrderStatus),
        one_of("shipping_temperature", "shipping_temperature", TemperatureClass, nullable=True),
        CheckConstraint(
            "status IN ('draft', 'cancelled') OR (approved_by_id IS NOT NULL AND approved_at IS NOT NULL)",
            name="approved_before_shipping",
        ),
        CheckConstraint(
            "status NOT IN ('shipped', 'received', 'closed')"
            " OR (shipped_at IS NOT NULL AND shipped_by_id IS NOT NULL AND shipping_temperature IS NOT NULL)",
            name="shipment_recorded",
        ),
        CheckConstraint(
            "status NOT IN ('received', 'closed') OR received_at IS NOT NULL", name="receipt_recorded"
        ),
        CheckConstraint(
            "received_at IS NULL OR (shipped_at IS NOT NULL AND received_at >= shipped_at)",
            name="received_after_shipped",
        ),
        CheckConstraint(
            "shipped_at IS NULL OR (approved_at IS NOT NULL AND shipped_at >= approved_at)",
            name="shipped_after_approved",
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(unique=True, max_length=32)
    study: str = Field(max_length=120)
    recipient: str = Field(max_length=200)
    purpose: str | None = Field(default=None, max_length=500)
    use: str = Field(max_length=20)
    status: str = Field(default=OrderStatus.draft.value, max_length=12)
    approved_by_id: int | None = Field(default=None, foreign_key="user_account.id", ondelete="RESTRICT")
    approved_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    shipped_by_id: int | None = Field(default=None, foreign_key="user_account.id", ondelete="RESTRICT")
    shipped_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    shipping_temperature: str | None = Field(default=None, max_length=10)
    tracking_ref: str | None = Field(default=None, max_length=120)
    received_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    note: str | None = Field(default=None, max_length=500)


class DistributionItem(Tracked, table=True):
    __tablename__ = "distribution_item"
    __table_args__ = (
        UniqueConstraint("order_id", "specimen_id"),
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint(
            "quantity_returned >= 0 AND quantity_returned <= quantity", name="returned_within_quantity"
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    order_id: int = Field(foreign_key="distribution_order.id", ondelete="RESTRICT", index=True)
    specimen_id: int = Field(foreign_key="specimen.id", ondelete="RESTRICT", index=True)
    quantity: float
    quantity_returned: float = Field(default=0.0)
