"""Use `heiwa serve` with the official openai Python client and print what it
saw as one JSON object (the Rust test asserts on it).

    openai_client.py BASE_URL KEY
"""
import json
import sys

import openai

base_url, key = sys.argv[1], sys.argv[2]
client = openai.OpenAI(base_url=base_url, api_key=key, max_retries=0, timeout=120)
seen = {}

models = [m.id for m in client.models.list()]
seen["models"] = models
chat_model, embed_model = models[0], models[1]
messages = [{"role": "user", "content": "Name three primary colours, comma separated."}]

whole = client.chat.completions.create(model=chat_model, messages=messages, temperature=0, max_tokens=24)
seen["whole"] = {"text": whole.choices[0].message.content, "finish": whole.choices[0].finish_reason,
                 "completion_tokens": whole.usage.completion_tokens}

pieces = []
finish = None
for chunk in client.chat.completions.create(model=chat_model, messages=messages, temperature=0, max_tokens=24, stream=True):
    if chunk.choices and chunk.choices[0].delta.content:
        pieces.append(chunk.choices[0].delta.content)
    if chunk.choices and chunk.choices[0].finish_reason:
        finish = chunk.choices[0].finish_reason
seen["streamed"] = {"text": "".join(pieces), "pieces": len(pieces), "finish": finish}

stopped = client.chat.completions.create(model=chat_model, messages=messages, temperature=0, max_tokens=24, stop=[","])
seen["stopped"] = stopped.choices[0].message.content

embedded = client.embeddings.create(model=embed_model, input=["a cat sat on the mat", "a kitten rested on the rug"])
seen["embeddings"] = [len(d.embedding) for d in embedded.data]


def error_of(call):
    try:
        call()
        return None
    except openai.APIStatusError as e:
        return {"status": e.status_code, "type": type(e).__name__, "code": (e.body or {}).get("code")}


seen["wrong_key"] = error_of(lambda: openai.OpenAI(base_url=base_url, api_key="wrong", max_retries=0).models.list())
seen["unknown_model"] = error_of(lambda: client.chat.completions.create(model="gpt-9", messages=messages))
seen["too_long"] = error_of(lambda: client.chat.completions.create(
    model=chat_model, messages=[{"role": "user", "content": "word " * 5000}], max_tokens=16))
print(json.dumps(seen))
