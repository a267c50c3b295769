"""Which server software a user's endpoint is, for the manifest's server info.

Recognised, in this order: llama.cpp `llama-server`, vLLM and SGLang by the names on their
Prometheus `/metrics` (`llamacpp:*`, `vllm:*`, `sglang:*`; see `server_metrics`); Ollama by its
root answering `Ollama is running` and `/api/version` giving `{"version": ...}` (server/routes.go).
Anything else is recorded as not recognised, with what was tried.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
from yarl import URL

from perwatt.endpoints.client import _authorization, api_key_from_env


@dataclass(frozen=True)
class ServerIdentity:
    """The software behind an endpoint, its version where it says, and how it was told."""

    software: str  # "llama.cpp" | "vLLM" | "SGLang" | "Ollama" | "" (not recognised)
    version: str = ""
    evidence: str = ""

    def describe(self) -> str:
        if not self.software:
            return ""
        return f"{self.software} {self.version}".strip()


def root_url(base_url: str) -> str:
    """The server's root: `http://h:11434/v1` → `http://h:11434` (no userinfo, query, fragment)."""
    url = URL(base_url).with_user(None).with_query(None).with_fragment(None)
    path = url.path.rstrip("/")
    if path.endswith("/v1"):
        path = path[: -len("/v1")]
    return str(url.with_path(path or "/")).rstrip("/")


def ollama_version(root_text: str, version_payload: Any) -> str | None:
    """Ollama's version from its root text and `/api/version` JSON; None if it is not Ollama."""
    if not root_text.strip().startswith("Ollama is running"):
        return None
    if isinstance(version_payload, dict) and isinstance(version_payload.get("version"), str):
        return version_payload["version"]
    return ""


def identify_server(
    base_url: str, *, metrics_software: str = "", timeout_s: float = 2.0
) -> ServerIdentity:
    """The endpoint's software: from its `/metrics` names when the scraper recognised them,
    else by asking it whether it is Ollama. Never raises: an endpoint that does not answer is
    simply not recognised."""
    if metrics_software:
        return ServerIdentity(metrics_software, evidence="names on its Prometheus /metrics")
    root = root_url(base_url)
    header, _ = _authorization(base_url, api_key_from_env())
    headers = {"Authorization": header} if header else {}
    try:
        with httpx.Client(timeout=timeout_s, headers=headers) as http:
            text = http.get(root + "/").text
            payload: Any = None
            response = http.get(root + "/api/version")
            if response.status_code == 200:
                try:
                    payload = response.json()
                except ValueError:
                    payload = None
    except httpx.HTTPError:
        return ServerIdentity("", evidence="no /metrics; its root did not answer")
    version = ollama_version(text, payload)
    if version is not None:
        return ServerIdentity("Ollama", version, evidence="its root and /api/version")
    return ServerIdentity("", evidence="no /metrics names and not Ollama")
