numbers = [3, 1, 4, 1, 5, 9, 2, 6]
total = sum(numbers)
print("Total:", total)
