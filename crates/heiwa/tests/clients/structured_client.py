"""Ask `heiwa serve` for structured output with the official openai client's
`response_format`, check every answer with the jsonschema package, and print
what was seen as one JSON object (the Rust test asserts on it).

    structured_client.py BASE_URL KEY
"""
import json
import sys

import jsonschema
import openai

base_url, key = sys.argv[1], sys.argv[2]
client = openai.OpenAI(base_url=base_url, api_key=key, max_retries=0, timeout=300)
chat_model = client.models.list().data[0].id

SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "minLength": 1, "maxLength": 24},
        "country": {"type": "string", "minLength": 1, "maxLength": 24},
        "coastal": {"type": "boolean"},
        "rank": {"type": "integer", "minimum": 1, "maximum": 10},
    },
    "required": ["city", "country", "coastal", "rank"],
    "additionalProperties": False,
}
PLACES = ["Lisbon", "Nairobi", "Kyoto", "Lima", "Oslo", "Hanoi", "Quito", "Dakar", "Perth", "Bergen",
          "Cusco", "Tunis", "Busan", "Cork", "Split", "Leeds", "Accra", "Osaka", "Porto", "Turin"]

answers = []
for place in PLACES:
    reply = client.chat.completions.create(
        model=chat_model,
        messages=[{"role": "user", "content": f"Give facts about {place} as JSON: city, country, coastal, rank (1-10)."}],
        temperature=0,
        max_tokens=80,
        response_format={"type": "json_schema", "json_schema": {"name": "place", "schema": SCHEMA, "strict": True}},
    )
    text = reply.choices[0].message.content
    try:
        value = json.loads(text)
        jsonschema.validate(value, SCHEMA)
        answers.append({"valid": True, "text": text})
    except (ValueError, jsonschema.ValidationError) as e:
        answers.append({"valid": False, "text": text, "why": str(e)[:200]})

plain = client.chat.completions.create(
    model=chat_model,
    messages=[{"role": "user", "content": "Describe a cat in JSON with two short fields."}],
    temperature=0,
    max_tokens=200,
    response_format={"type": "json_object"},
)
try:
    json_object = type(json.loads(plain.choices[0].message.content)).__name__
except ValueError as e:
    json_object = f"invalid: {e}: {plain.choices[0].message.content!r}"


def error_of(response_format):
    try:
        client.chat.completions.create(model=chat_model, messages=[{"role": "user", "content": "hi"}],
                                       max_tokens=4, response_format=response_format)
        return None
    except openai.APIStatusError as e:
        error = (e.body or {})
        return {"status": e.status_code, "type": type(e).__name__, "param": error.get("param"),
                "message": error.get("message", "")}


print(json.dumps({
    "answers": answers,
    "json_object": json_object,
    "bad_schema": error_of({"type": "json_schema", "json_schema": {"name": "bad", "schema": {
        "type": "object", "properties": {"a": {"$ref": "#/$defs/missing"}}}}}),
    "no_schema": error_of({"type": "json_schema", "json_schema": {"name": "none"}}),
}))
