name = "  Ada Lovelace  "
clean = name.strip()
first, last = clean.split()
print(clean.lower(), clean.upper(), first, last)
print(", ".join([last, first]))
print(clean.replace("Ada", "Augusta").startswith("Aug"))
