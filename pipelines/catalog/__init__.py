"""The billing catalog: meters, plans, customers, subscriptions, billing profiles, channels."""

from pipelines.catalog.loader import CatalogError, load_catalog
from pipelines.catalog.models import Catalog

__all__ = ["Catalog", "CatalogError", "load_catalog"]
