"""Google Cloud Secret Manager: read one secret version with the caller's own credentials."""

from __future__ import annotations

import base64

SECRET_MANAGER_URL = "https://secretmanager.googleapis.com"
API_TIMEOUT_S = 30  # bounded, so a step never waits long on an unreachable service


def read_secret(name: str) -> str:
    """The payload of the Secret Manager version ``name`` (``projects/P/secrets/S/versions/V``), stripped.

    Raises:
        google.auth.exceptions.DefaultCredentialsError: no credentials here.
        requests.HTTPError: the service refused (no such version, no permission).
    """
    import google.auth
    from google.auth.transport.requests import AuthorizedSession

    credentials, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
    response = AuthorizedSession(credentials).get(f"{SECRET_MANAGER_URL}/v1/{name}:access", timeout=API_TIMEOUT_S)
    response.raise_for_status()
    return base64.b64decode(response.json()["payload"]["data"]).decode("utf-8").strip()
