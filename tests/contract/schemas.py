"""Checking a JSON value against a component of our OpenAPI or AsyncAPI document."""

from __future__ import annotations

from typing import Any

from jsonschema import Draft202012Validator, FormatChecker


def validator(document: dict[str, Any], component: str) -> Draft202012Validator:
    """A validator for ``#/components/schemas/<component>``, refs resolved in ``document``."""
    schema = {"$ref": f"#/components/schemas/{component}", "components": document["components"]}
    return Draft202012Validator(schema, format_checker=FormatChecker())


def problems(document: dict[str, Any], component: str, value: Any) -> list[str]:
    return [error.message for error in validator(document, component).iter_errors(value)]
