from django.urls import path

from catalog.apis import CatalogApi

app_name = "catalog"

urlpatterns = [
    path("", CatalogApi.as_view(), name="catalog"),
]
