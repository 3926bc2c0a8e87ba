"""OpenAPI schema hooks (drf-spectacular): what the schema can only know from the database."""

import logging

from django.db import DatabaseError

logger = logging.getLogger(__name__)

CREATE_PATH = "/api/checkout/create-session"


def plan_ids_enum(result, generator, request, public):
    """List the plans on sale as `planId`'s enum, read when the schema is generated (staff add plans in the admin;
    the API answers `plan_unavailable` for any other code). Offline, or without a database, it has no enum."""
    from catalog.models import Product

    if request is None:  # generated offline (`manage.py spectacular`, system checks): no database reads then
        return result
    try:
        codes = list(Product.objects.filter(active=True).order_by("sort_order", "code").values_list("code", flat=True))
    except DatabaseError:
        logger.warning("No database while generating the schema: planId is documented without its enum")
        return result
    content = result["paths"][CREATE_PATH]["post"]["requestBody"]["content"]
    for media in content.values():
        name = media["schema"]["$ref"].rsplit("/", 1)[-1]
        plan_id = result["components"]["schemas"][name]["properties"]["planId"]
        if codes:
            plan_id["enum"] = codes
    return result
