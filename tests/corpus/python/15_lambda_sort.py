people = [("Ann", 31), ("Bob", 22), ("Cid", 45)]
people.sort(key=lambda p: p[1], reverse=True)
names = list(map(lambda p: p[0].upper(), people))
print(names)
