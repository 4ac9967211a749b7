"""The official OpenAI Python client against a running sweep-mock-engine.

Usage: python3 tests/openai_conformance.py http://127.0.0.1:PORT
Exits non-zero with the reason on the first mismatch; prints one line per check that passed.
Run by crates/sweep-mock/tests/process.rs.
"""

import sys

import openai

base = sys.argv[1]
client = openai.OpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0, timeout=30)
controls = {"max_tokens": 12, "extra_body": {"min_tokens": 12, "ignore_eos": True}}
prompt = " ".join(["word"] * 40)


def check(name, condition, detail=""):
    if not condition:
        sys.exit(f"FAIL {name}: {detail}")
    print(f"ok {name}")


models = client.models.list()
check("models.list", [m.id for m in models.data] == ["tiny"], models)

stream = client.chat.completions.create(
    model="tiny",
    messages=[{"role": "user", "content": prompt}],
    stream=True,
    stream_options={"include_usage": True},
    **controls,
)
text, usage, finish = "", None, None
for chunk in stream:
    if chunk.usage is not None:
        usage = chunk.usage
    for choice in chunk.choices:
        text += choice.delta.content or ""
        finish = choice.finish_reason or finish
check("chat stream tokens", len(text.split()) == 12, text)
check("chat stream usage", usage is not None and (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (40, 12, 52), usage)
check("chat stream finish_reason", finish == "length", finish)

stream = client.completions.create(model="tiny", prompt=prompt, stream=True, stream_options={"include_usage": True}, **controls)
text, usage = "", None
for chunk in stream:
    if chunk.usage is not None:
        usage = chunk.usage
    for choice in chunk.choices:
        text += choice.text or ""
check("completions stream tokens", len(text.split()) == 12, text)
check("completions stream usage", usage is not None and (usage.prompt_tokens, usage.completion_tokens) == (40, 12), usage)

chat = client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": prompt}], **controls)
check("chat response", chat.choices[0].message.role == "assistant" and len(chat.choices[0].message.content.split()) == 12, chat)
check("chat response usage", (chat.usage.prompt_tokens, chat.usage.completion_tokens) == (40, 12), chat.usage)

completion = client.completions.create(model="tiny", prompt=prompt, **controls)
check("completions response", len(completion.choices[0].text.split()) == 12 and completion.usage.completion_tokens == 12, completion)

try:
    client.chat.completions.create(model="not-served", messages=[{"role": "user", "content": "x"}])
    check("unknown model", False, "no error")
except openai.NotFoundError as error:
    check("unknown model", error.status_code == 404 and "not-served" in str(error), error)

try:
    client.completions.create(model="tiny", prompt="x", max_tokens=-1)
    check("bad max_tokens", False, "no error")
except openai.BadRequestError as error:
    check("bad max_tokens", error.status_code == 400 and "max_tokens" in str(error), error)

try:
    client.chat.completions.create(model="tiny", messages=[])
    check("empty messages", False, "no error")
except openai.BadRequestError as error:
    check("empty messages", error.status_code == 400, error)

print("all passed")
