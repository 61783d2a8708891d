"""The admin console: server-rendered pages under ``/admin`` and a JSON API under ``/api/admin``.

Everything here needs a login; webhooks, unsubscribe pages, ``/api/events`` and
``/healthz`` live elsewhere and stay public.
"""
