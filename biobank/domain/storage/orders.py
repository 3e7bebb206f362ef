"""Distribution vocabularies as data: what an order is for, its states and how consent maps onto the use."""

from __future__ import annotations

from enum import StrEnum

from biobank.domain.vocab import ConsentScope


class DistributionUse(StrEnum):
    sequencing = "sequencing"
    model_derivation = "model_derivation"
    external_sharing = "external_sharing"
    research = "research"


#: Consent scopes every item of an order needs, by the order's use (research use always, plus the specific one).
USE_SCOPES: dict[DistributionUse, tuple[ConsentScope, ...]] = {
    DistributionUse.sequencing: (ConsentScope.research_use, ConsentScope.genomic_sequencing),
    DistributionUse.model_derivation: (ConsentScope.research_use, ConsentScope.model_derivation),
    DistributionUse.external_sharing: (ConsentScope.research_use, ConsentScope.external_sharing),
    DistributionUse.research: (ConsentScope.research_use,),
}


class OrderStatus(StrEnum):
    draft = "draft"
    approved = "approved"
    shipped = "shipped"
    received = "received"
    closed = "closed"
    cancelled = "cancelled"


#: Allowed moves of an order's status.
TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    OrderStatus.draft: frozenset({OrderStatus.approved, OrderStatus.cancelled}),
    OrderStatus.approved: frozenset({OrderStatus.shipped, OrderStatus.cancelled}),
    OrderStatus.shipped: frozenset({OrderStatus.received}),
    OrderStatus.received: frozenset({OrderStatus.closed}),
    OrderStatus.closed: frozenset(),
    OrderStatus.cancelled: frozenset(),
}

#: Orders whose items still hold a claim on the specimen's remaining quantity.
OPEN_STATUSES = frozenset({OrderStatus.draft, OrderStatus.approved})
