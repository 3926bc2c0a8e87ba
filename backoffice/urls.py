"""The back office's own pages beside the model admins (search, customer page, exports, audit log), under the admin's
URL prefix. Each view is wrapped in `admin.site.admin_view` (staff login, CSRF, no caching) and checks its permission.

Mounted before `admin.site.urls` in config/urls.py, so that these paths win over the admin's catch-all.
"""

from django.contrib import admin
from django.urls import path

from backoffice.audit import audit_log_view
from backoffice.search import search_view

app_name = "backoffice"

urlpatterns: list = [
    path("audit/", admin.site.admin_view(audit_log_view), name="audit_log"),  # backoffice.view_audit_log
    # View permission on customers, orders or subscriptions: each kind of result only for who may see it.
    path("search/", admin.site.admin_view(search_view), name="search"),
]
