from collections import Counter

text = "the quick brown fox jumps over the lazy dog the end"
counts = Counter(text.split())
for word, count in counts.most_common(3):
    print(f"{word}: {count}")
