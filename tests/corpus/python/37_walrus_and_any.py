values = [4, 8, 15, 16, 23, 42]
if (n := len(values)) > 5:
    print(f"long list of {n} items")
print(any(v > 40 for v in values), all(v > 0 for v in values))
