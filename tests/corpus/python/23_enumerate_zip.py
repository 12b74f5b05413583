names = ["a", "b", "c"]
scores = [90, 85, 77]
for i, (name, score) in enumerate(zip(names, scores), start=1):
    print(i, name, score)
