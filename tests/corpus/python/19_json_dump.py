import json

data = {"name": "widget", "price": 9.99, "tags": ["a", "b"], "stock": None, "active": True}
text = json.dumps(data, indent=2)
print(text)
loaded = json.loads(text)
assert loaded["price"] == 9.99
