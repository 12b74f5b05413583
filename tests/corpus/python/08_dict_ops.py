ages = {"alice": 30, "bob": 25, "carol": 35}
ages["dave"] = 40
oldest = max(ages, key=ages.get)
print(oldest, ages[oldest])
for name, age in sorted(ages.items()):
    print(name, age)
