import random

random.seed(42)
colors = ["red", "green", "blue"]
picks = [random.choice(colors) for _ in range(5)]
print(picks)
print(random.randint(1, 6))
