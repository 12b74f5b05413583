result = (17 * 23) + 4 ** 2 - 100 / 8
print(result)
