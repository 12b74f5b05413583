def average(values):
    if not values:
        raise ValueError("empty list")
    return sum(values) / len(values)

grades = [88, 92, 79, 93]
avg = average(grades)
print(f"Average: {avg:.2f}")
