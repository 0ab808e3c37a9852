"""Checks recorded API responses against the response schemas of openapi.yaml.

usage: validate_responses.py OPENAPI_YAML CASES_JSON
CASES_JSON: [{"method": "get", "path": "/v1/sources/{id}", "status": 200, "body": ...}, ...]
Prints one line per problem and exits 1 if there is any. Uses jsonschema's Draft 2020-12
validator: OpenAPI 3.1 schemas are JSON Schema 2020-12.
"""
import json
import sys

import jsonschema
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

BASE = "urn:openapi"


def absolute(node):
    """A schema from the document with its `#/…` references made absolute."""
    if isinstance(node, dict):
        return {k: (BASE + v if k == "$ref" and isinstance(v, str) and v.startswith("#") else absolute(v)) for k, v in node.items()}
    if isinstance(node, list):
        return [absolute(v) for v in node]
    return node


def resolve(document, ref):
    node = document
    for part in ref.lstrip("#/").split("/"):
        node = node[part]
    return node


def closed(document):
    """A copy of the document in which every object schema that lists its properties admits
    no other member (`unevaluatedProperties: false`), so an undocumented or leaked field in a
    response shows. A schema used as a member of an `allOf` is left open (its siblings add
    members); the `allOf` itself is closed instead."""
    document = json.loads(json.dumps(document))
    schemas = document.get("components", {}).get("schemas", {})
    members = set()

    def collect(node):
        if isinstance(node, dict):
            for member in node.get("allOf", []):
                if isinstance(member, dict) and isinstance(member.get("$ref"), str):
                    members.add(member["$ref"].split("/")[-1])
            for value in node.values():
                collect(value)
        elif isinstance(node, list):
            for value in node:
                collect(value)

    collect(document)

    def close(node, member=False):
        if isinstance(node, dict):
            open_already = "additionalProperties" in node or "unevaluatedProperties" in node
            if not open_already and not member and ("allOf" in node or "properties" in node):
                node["unevaluatedProperties"] = False
            for key, value in node.items():
                if key == "allOf" and isinstance(value, list):
                    for item in value:
                        close(item, member=True)
                else:
                    close(value)
        elif isinstance(node, list):
            for value in node:
                close(value)

    for name, schema in schemas.items():
        close(schema, member=name in members)
    for path in document.get("paths", {}).values():
        close(path)
    return document


def main():
    document = closed(yaml.safe_load(open(sys.argv[1])))
    cases = json.load(open(sys.argv[2]))
    registry = Registry().with_resource(BASE, Resource(contents=document, specification=DRAFT202012))
    problems = 0
    for case in cases:
        name = f"{case['method'].upper()} {case['path']} {case['status']}"
        responses = document["paths"][case["path"]][case["method"]]["responses"]
        # Only a status the operation lists counts as documented; `default` does not.
        response = responses.get(str(case["status"]))
        if response is None:
            print(f"{name}: status not documented")
            problems += 1
            continue
        if "$ref" in response:
            response = resolve(document, response["$ref"])
        content = response.get("content") or {}
        media = content.get("application/json") or content.get("application/problem+json")
        if media is None or "schema" not in media:
            if case.get("body") is not None and content == {}:
                print(f"{name}: a body where the document describes none")
                problems += 1
            continue
        validator = jsonschema.Draft202012Validator(absolute(media["schema"]), registry=registry)
        for error in sorted(validator.iter_errors(case.get("body")), key=lambda e: list(e.absolute_path)):
            where = "/".join(str(p) for p in error.absolute_path) or "(body)"
            print(f"{name}: at {where}: {error.message[:300]}")
            problems += 1
    print(f"{len(cases)} responses checked, {problems} problems")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
