words = ["apple", "banana", "cherry"]
lengths = {w: len(w) for w in words}
unique_letters = {c for w in words for c in w}
print(lengths)
print(sorted(unique_letters))
